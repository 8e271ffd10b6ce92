"""The secret rules of `gateway.pii.secrets` as one Presidio recognizer."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, RecognizerResult

from gateway.pii.recognizers import _result
from gateway.pii.secrets import RULES, SECRET, Rule, find_secrets


class SecretsRecognizer(EntityRecognizer):
    """One Presidio recognizer for every secret rule; results are all `SECRET`."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules
        super().__init__(supported_entities=[SECRET], name="SecretsRecognizer", supported_language="en")

    def load(self) -> None:  # nothing to load; patterns compile at import
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        if entities and SECRET not in entities:
            return []
        return [_result(self, SECRET, start, end, score, kind=kind)
                for kind, start, end, score in find_secrets(text, self.rules)]
