"""What the kernel tests of the agent share: ``lab``, throwaway namespaces of ``netlab.Lab``
removed after each test whatever happened in it. (The ACL and load-balancing packet tests
build labs of their own shape under the same fixture name, which overrides this one.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent.netlab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    made = Lab()
    try:
        yield made
    finally:
        made.cleanup()
