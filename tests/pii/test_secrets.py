import pytest

from gateway.pii.secrets import entropy, find_secrets

# Built at run time so that secret scanners do not flag this file.
POSITIVES = {
    "openai": "OPENAI_API_KEY is sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF",
    "anthropic": "use sk-ant-api03-" + "x7Yq2Lp9Vn4Kd8Rs1Tb6Wc3Hj5Mf0Gz-AbCdEfGh" + "_ijk" * 5,
    "aws": "aws_access_key_id = AKIA" + "Z3Q7W2XK9LMN4PRT",
    "gcp": "key=AIza" + "SyD3k9Lm2Qp7Rt5Vx8Zb1Cf4Gh6Jk0Nm3Pq",
    "azure_conn": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
    + "q8Zt3Lm9Pw2Xv7Rk4Jn6Bc1Df5Gh0Ks8Tu3Yw6Ae9Ci2Eo=="
    + ";",
    "github": "token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "gitlab": "glpat-" + "Xy7Zq2Lm9Pw3Rk8Tn4Vb",
    "slack": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe": "sk_live_" + "51HfX2kLm9Pq7Rt3Vw8Yz",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----",
    "jwt": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "conn_string": "postgres://app:" + "S3cr3tPass" + "@db.internal:5432/prod",
    "password_prose": "my password is Tr0ub4dor&3",
    "generic_keyed": "payment_service_secret = " + "f3A9kL2mQ7xR8tV1wZ4bN6cJ",
}
NEGATIVES = [
    "The password is required to log in.",
    "Set password = $DB_PASSWORD in your env file.",
    "Use the token to authenticate (see docs).",
    "The key to success is consistency.",
    "commit 3b335d612137949d2f21fcc6c8c8164db7603227 fixed it",
    "postgres://user:****@localhost/db",
    "A monkey ate 12 bananas.",
    "Write a function named calculate_total_price_with_discount_and_tax please.",
]


@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_each_secret_kind_is_found(name):
    text = POSITIVES[name]
    assert find_secrets(text), name


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_text_and_placeholders_are_not_secrets(text):
    assert find_secrets(text) == []


def test_span_covers_the_value_not_the_label():
    text = POSITIVES["aws"]
    kinds = {(k, text[s:e]) for k, s, e, _ in find_secrets(text)}
    assert ("aws_access_key_id", "AKIA" + "Z3Q7W2XK9LMN4PRT") in kinds


def test_entropy():
    assert entropy("aaaa") == 0
    assert entropy("abcd") == 2
