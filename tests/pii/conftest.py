import pytest

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.config import PiiPolicy


@pytest.fixture(scope="session")
def analyzer() -> PiiAnalyzer:
    return PiiAnalyzer(PiiPolicy())
