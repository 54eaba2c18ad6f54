"""The test suite's lockout backend: axes' checks for every request, and `client.login()` (no request) let through."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LockoutBackendAllowingTestLogin(AxesStandaloneBackend):
    """AxesStandaloneBackend, except that an authenticate() without a request passes to the next backend.

    Django's test client logs in without a request, which axes refuses; logins through the
    login page (the browser tests, the lockout tests) still go through the lockout.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
