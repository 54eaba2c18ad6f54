"""A migrated database has the Support, Operations and Managers groups with their permissions."""

import pytest
from django.contrib.auth.models import Group, User

from taskops.roles import MANAGERS, OPERATIONS, ROLE_PERMISSIONS, SUPPORT, roles_sync

pytestmark = pytest.mark.django_db


def _member(group_name: str) -> User:
    user = User.objects.create_user(f"u-{group_name}", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return User.objects.get(pk=user.pk)  # fresh instance: no permission cache


def test_migrate_creates_the_three_groups_with_their_permissions():
    for name, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=name)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert have == set(perms), name


def test_only_operations_may_change_schedules():
    assert _member(OPERATIONS).has_perm("django_celery_beat.change_periodictask")
    assert not _member(SUPPORT).has_perm("django_celery_beat.change_periodictask")
    assert not _member(MANAGERS).has_perm("django_celery_beat.change_periodictask")


def test_every_group_may_read_task_results():
    for name in (SUPPORT, OPERATIONS, MANAGERS):
        assert _member(name).has_perm("django_celery_results.view_taskresult"), name


def test_sync_repairs_a_tampered_group_and_is_idempotent():
    support = Group.objects.get(name=SUPPORT)
    support.permissions.clear()

    first = roles_sync()
    second = roles_sync()

    assert first == second == {name: len(perms) for name, perms in ROLE_PERMISSIONS.items()}
    assert support.permissions.count() == len(ROLE_PERMISSIONS[SUPPORT])
