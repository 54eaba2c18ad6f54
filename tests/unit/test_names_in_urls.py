"""Any name a sender or worker chose is one path segment of the console's URLs, and comes back unchanged."""

from urllib.parse import unquote, urlsplit

import pytest
from django.urls import resolve, reverse

from taskops.admin.pages import NameConverter, name_in_url

NAMES = ["", ".", "..", "...", "~", "~7E", "~2F", "a/b", "/", "//x//", "%", "%2F", "?", "#", " ",
         "é/ü", "\\", "a.b@host", "celery@w1", "6b1f0c2e-1d2c-4e6b-9f3a-2b7c9d1e0f11"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_survives_the_round_trip_through_its_url(name):
    path = urlsplit(reverse("admin:taskops_taskrun_detail", args=[name])).path
    assert "/./" not in path and "/../" not in path  # browsers would drop dot segments
    assert resolve(unquote(path)).kwargs == {"task_id": name}
    assert path.endswith(f"/{name_in_url(name)}/")


def test_plain_names_are_their_own_segment():
    for name in ("default", "celery@w1", "a.b-c_d:e", "6b1f0c2e-1d2c"):
        assert NameConverter().to_url(name) == name


@pytest.mark.parametrize("segment", ["~", "~zz", "a~", "~2", "~2f"])
def test_a_segment_with_a_stray_escape_character_is_no_name(segment):
    if segment == "~":
        assert NameConverter().to_python(segment) == ""
        return
    with pytest.raises(ValueError):
        NameConverter().to_python(segment)
