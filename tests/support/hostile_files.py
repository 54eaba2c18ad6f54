"""Hostile import files built in memory: a workbook around any sheet XML, and the shapes that cost readers most."""

from __future__ import annotations

import io
import zipfile

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PARTS = {
    "[Content_Types].xml":
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.worksheet+xml"/></Types>',
    "_rels/.rels":
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
        f'Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml":
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
        '<sheet name="schedules" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels":
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
}
NAME_HEADER = b'<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'


def xlsx_with_rows(rows_xml: bytes, *, prolog: bytes = b"") -> bytes:
    """A minimal workbook whose one sheet's <sheetData> is `rows_xml` (deflated, as Excel writes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _PARTS.items():
            archive.writestr(name, text)
        sheet = f'<worksheet xmlns="{_MAIN}"><sheetData>'.encode()
        archive.writestr("xl/worksheets/sheet1.xml",
                         prolog + sheet + rows_xml + b"</sheetData></worksheet>")
    return out.getvalue()


# (format, content) of files whose reading once took minutes; each must be refused at once.
HOSTILE_FILES = {
    # 2 million rows in ~130 KB (the one reported: 592 KB, 268 s): unpacks to ~50 MB.
    "xlsx of 2 million rows": ("xlsx", lambda: xlsx_with_rows(
        NAME_HEADER + b"<row><c><v>1</v></c></row>" * 2_000_000)),
    "xlsx of 100,000 rows (small unpacked)": ("xlsx", lambda: xlsx_with_rows(
        NAME_HEADER + b"<row><c><v>1</v></c></row>" * 100_000)),
    "xlsx of 200,000 columns": ("xlsx", lambda: xlsx_with_rows(
        b"<row>" + b"<c><v>1</v></c>" * 200_000 + b"</row>")),
    "xlsx with one cell in the last row and column": ("xlsx", lambda: xlsx_with_rows(
        NAME_HEADER + b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')),
    "yaml nested 100,000 deep (flow)": ("yaml", lambda: b"[" * 100_000 + b"]" * 100_000),
    "yaml nested 2,000 deep (block)": ("yaml", lambda: "".join(
        " " * i + "a:\n" for i in range(2_000)).encode() + b" " * 2_000 + b"x\n"),
    "yaml of 400,000 rows": ("yaml", lambda: b"- {name: x}\n" * 400_000),
    "json nested 100,000 deep": ("json", lambda: b"[" * 100_000 + b"]" * 100_000),
    "json of 1 million rows": ("json", lambda: b"[" + b"{}," * 1_000_000 + b"{}]"),
    "csv of 200,000 columns": ("csv", lambda: (",".join(f"c{i}" for i in range(200_000)) + "\n"
                                              + ",".join("x" * 4 for _ in range(200_000))).encode()),
    "csv of 1 million rows": ("csv", lambda: b"name\n" + b"x\n" * 1_000_000),
    "csv of 4 million blank lines": ("csv", lambda: b"name\n" + b"\n" * 4_000_000),
}
