"""The browser tests' poll: a page that re-renders mid-check is looked at again, not a failure."""

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from local.console_session import wait


def test_a_stale_element_is_checked_again():
    """The console's list re-renders on a filter change; a row found before and read after it
    is stale (CI failed on this once). The next look finds the new list."""
    looks = iter([StaleElementReferenceException("re-rendered"), ["c-1"]])

    def check():
        seen = next(looks)
        if isinstance(seen, Exception):
            raise seen
        return seen

    assert wait("the list", check, timeout=5) == ["c-1"]


def test_a_check_that_never_holds_still_fails_by_name():
    def stale():
        raise StaleElementReferenceException("always")

    with pytest.raises(AssertionError, match="timed out waiting for the list"):
        wait("the list", stale, timeout=0.3)
