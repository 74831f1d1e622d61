from cryptography import x509

from stepca.testing import make_csr, make_token


def test_sign_issues_leaf_from_token(stepca_pki, stepca_ca):
    csr, _ = make_csr("foo.example.com")
    result = stepca_ca.sign(csr, make_token(stepca_pki, "foo.example.com"))
    assert result.status_code == 201, result.text
    body = result.json
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert cert.subject.rfc4514_string() == "CN=foo.example.com"
    assert body["certChain"][0] == body["crt"] and body["ca"] == body["certChain"][1]
