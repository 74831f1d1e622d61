"""Conformance suites for stepca plugins, reused by inheritance.

A plugin's test module subclasses a suite and supplies the fixtures it names; pytest then runs
every inherited test against the plugin::

    import pytest
    import stepca_vault
    from stepca.testing.contracts import KeyStoreContract

    class TestVaultKeyStore(KeyStoreContract):
        plugin = stepca_vault

        @pytest.fixture
        def key_store(self, vault_server):
            return stepca_vault.VaultKeyStore(vault_server.url)

        @pytest.fixture
        def new_key_ref(self):
            return lambda name: f"vaultkms:transit/{name}"

The suites' names do not start with ``Test``, so pytest never collects them on their own. They
test behaviour the authority relies on, not a plugin's internals: a token id is spent once, a
refused write records nothing, a key signs certificates that verify, a tampered token is refused.
stepca itself is imported inside the tests and fixtures, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from stepca.keystore import KeyStore
    from stepca.provisioner import Provisioner, ProvisionerContext
    from stepca.provisioner_client import ProvisionerClient, TokenRequest
    from stepca.store import CertificateStore, RevocationInfo, RevocationStore, StoredCRL

__all__ = [
    "CertificateStoreContract",
    "KeyStoreContract",
    "ProvisionerClientContract",
    "ProvisionerContract",
    "RevocationStoreContract",
    "MakeTokenRequest",
    "SignToken",
    "StoreContract",
]

PASSWORD = b"contract-password"
DNS_NAMES = ("localhost", "127.0.0.1")
SIGN_AUDIENCE = "https://localhost:9000/1.0/sign"
REVOKE_AUDIENCE = "https://localhost:9000/1.0/revoke"

MakeTokenRequest = Callable[..., "TokenRequest"]
"""``token_request(subject, *, sans, audience) -> TokenRequest``."""

SignToken = Callable[..., str]
"""``sign_token(subject, *, sans, audience, lifetime=5 min, now=None, **claims) -> str``."""


# -- helpers ---------------------------------------------------------------------------------------

def _spki(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(signer: Any, *, subject_key: Any = None, serial: int | None = None,
           issuer: x509.Certificate | None = None, cn: str = "contract.example",
           ca: bool = False, not_after: datetime | None = None) -> x509.Certificate:
    """A certificate for ``subject_key`` (default: the signer's own key) signed by ``signer``,
    valid for an hour from a minute ago, or for the hour before ``not_after``."""
    from stepca.x509util import signature_hash

    now = datetime.now(UTC).replace(microsecond=0)
    not_after = not_after or now + timedelta(hours=1)
    public_key = (subject_key or signer).public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn))
               .issuer_name(issuer.subject if issuer else _name(cn))
               .public_key(public_key)
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(min(now - timedelta(minutes=1), not_after - timedelta(hours=1)))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(signer, signature_hash(signer))


def _leaf(serial: int | None = None, *, not_after: datetime | None = None) -> x509.Certificate:
    """A throwaway certificate to store (stores treat it as opaque DER plus a serial)."""
    return _issue(ec.generate_private_key(ec.SECP256R1()), serial=serial, not_after=not_after)


def _revocation(serial: int, *, token_id: str | None = None, reason_code: int = 1,
                reason: str = "key compromise", mtls: bool = False,
                expires_at: datetime | None = None) -> RevocationInfo:
    from stepca.store import RevocationInfo

    now = datetime.now(UTC).replace(microsecond=0)  # whole seconds: stores may keep no more
    return RevocationInfo(serial=serial, provisioner_id="contract:kid", reason_code=reason_code,
                          reason=reason, revoked_at=now, expires_at=expires_at,
                          token_id=token_id, mtls=mtls)


def _crl(number: int) -> StoredCRL:
    """What the authority's CRL builder returns; stores keep the DER opaque."""
    from stepca.store import StoredCRL

    now = datetime.now(UTC).replace(microsecond=0)
    return StoredCRL(number=number, der=b"0\x03\x02\x01" + bytes([number % 256]),
                     this_update=now, next_update=now + timedelta(hours=24))


def _token_id() -> str:
    return secrets.token_hex(32)


def _registry(plugin: object | None, kind: str) -> dict[str, type]:
    from stepca.plugins import Plugins

    loaded = Plugins.load(plugins=[plugin] if plugin is not None else [], load_entrypoints=False)
    return dict(getattr(loaded, kind)())


# -- stores ----------------------------------------------------------------------------------------

class CertificateStoreContract:
    """What the authority needs from a ``CertificateStore``.

    Supply the fixture ``store``: a new, empty store (built in ``tmp_path`` or against a scratch
    database), closed by the fixture afterwards. Set ``plugin`` to the module holding the
    plugin's ``@hookimpl`` functions (leave it None for a built-in store).
    """

    plugin: ClassVar[object | None] = None

    def test_registered_as_certificate_store(self, store: CertificateStore) -> None:
        from stepca.store import CertificateStore

        assert isinstance(store, CertificateStore)
        registry = _registry(self.plugin, "certificate_stores")
        assert registry.get(str(type(store).type).lower()) is type(store)

    def test_spends_a_token_id_once(self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed

        token_id = _token_id()
        store.spend_token(token_id)
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(token_id)
        # ids are opaque, case-sensitive strings: neither a prefix nor another case is spent
        store.spend_token(token_id[:-1])
        store.spend_token(token_id.upper())

    def test_returns_a_certificate_with_its_provisioner(self, store: CertificateStore) -> None:
        from stepca.store import ProvisionerRef

        cert = _leaf()
        ref = ProvisionerRef(id="admin:kid-1", name="admin", type="JWK")
        store.store_certificate(cert, provisioner=ref, token_id=_token_id())
        found = store.get_certificate(cert.serial_number)
        assert found is not None
        assert found[0] == cert and found[1] == ref

    def test_stores_a_certificate_without_provisioner_or_token(
            self, store: CertificateStore) -> None:
        cert = _leaf()
        store.store_certificate(cert, provisioner=None, token_id=None)
        assert store.get_certificate(cert.serial_number) == (cert, None)

    def test_keeps_a_159_bit_serial(self, store: CertificateStore) -> None:
        # RFC 5280 allows 20 octets; step-ca's are 128 random bits, too large for an int64 column
        serial = (1 << 158) | secrets.randbits(158)
        cert = _leaf(serial)
        store.store_certificate(cert, provisioner=None, token_id=None)
        found = store.get_certificate(serial)
        assert found is not None and found[0].serial_number == serial

    def test_unknown_serial_is_none(self, store: CertificateStore) -> None:
        store.store_certificate(_leaf(), provisioner=None, token_id=None)
        assert store.get_certificate(x509.random_serial_number()) is None

    def test_storing_a_certificate_spends_its_token(self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed

        token_id = _token_id()
        store.store_certificate(_leaf(), provisioner=None, token_id=token_id)
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(token_id)

    def test_a_replayed_token_stores_nothing(self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed

        token_id = _token_id()
        first, second = _leaf(), _leaf()
        store.store_certificate(first, provisioner=None, token_id=token_id)
        with pytest.raises(TokenAlreadyUsed):
            store.store_certificate(second, provisioner=None, token_id=token_id)
        assert store.get_certificate(second.serial_number) is None
        assert store.get_certificate(first.serial_number) == (first, None)

    def test_a_token_spent_first_blocks_the_certificate(self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed

        token_id = _token_id()
        store.spend_token(token_id)
        cert = _leaf()
        with pytest.raises(TokenAlreadyUsed):
            store.store_certificate(cert, provisioner=None, token_id=token_id)
        assert store.get_certificate(cert.serial_number) is None

    def test_stores_a_renewed_certificate(self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed
        from stepca.store import ProvisionerRef

        ref = ProvisionerRef(id="admin:kid-1", name="admin", type="JWK")
        old, new, token_id = _leaf(), _leaf(), _token_id()
        store.store_certificate(old, provisioner=ref, token_id=None)
        store.store_renewed_certificate(new, renewed_from=old.serial_number, provisioner=ref,
                                        token_id=token_id)
        assert store.get_certificate(new.serial_number) == (new, ref)
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(token_id)
        replayed = _leaf()
        with pytest.raises(TokenAlreadyUsed):
            store.store_renewed_certificate(replayed, renewed_from=old.serial_number,
                                            provisioner=ref, token_id=token_id)
        assert store.get_certificate(replayed.serial_number) is None

    def test_usable_after_close(self, store: CertificateStore) -> None:
        # step-ca closes the store in the master before forking; each worker reopens on use
        from stepca.errors import TokenAlreadyUsed

        token_id, cert = _token_id(), _leaf()
        store.store_certificate(cert, provisioner=None, token_id=token_id)
        store.close()
        assert store.get_certificate(cert.serial_number) == (cert, None)
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(token_id)
        store.spend_token(_token_id())

    def test_concurrent_spends_have_one_winner(self, store: CertificateStore) -> None:
        # The CA serves requests on several threads: the check and the insert must be atomic.
        from stepca.errors import TokenAlreadyUsed

        token_id, threads = _token_id(), 8
        barrier = threading.Barrier(threads, timeout=30)
        outcomes: list[str] = []
        lock = threading.Lock()

        def spend() -> None:
            barrier.wait()
            try:
                store.spend_token(token_id)
                outcome = "spent"
            except TokenAlreadyUsed:
                outcome = "refused"
            except Exception as exc:  # reported below: any other error breaks the contract
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes.append(outcome)

        workers = [threading.Thread(target=spend) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert sorted(outcomes) == ["refused"] * (threads - 1) + ["spent"], outcomes


    def test_purge_forgets_only_token_ids_whose_token_expired(
            self, store: CertificateStore) -> None:
        from stepca.errors import TokenAlreadyUsed
        from stepca.store import Purged

        now = datetime.now(UTC).replace(microsecond=0)
        expired, expired_with_cert, live, forever = (_token_id() for _ in range(4))
        store.spend_token(expired, token_expires_at=now - timedelta(hours=2))
        cert = _leaf()
        store.store_certificate(cert, provisioner=None, token_id=expired_with_cert,
                                token_expires_at=now - timedelta(seconds=1))
        store.spend_token(live, token_expires_at=now + timedelta(minutes=5))
        store.spend_token(forever)  # no expiry: an id that outlives its token (first use)
        assert store.purge(token_ids_expired_before=now) == Purged(token_ids=2)
        for kept in (live, forever):
            with pytest.raises(TokenAlreadyUsed):  # a token not yet expired: replay refused
                store.spend_token(kept)
        assert store.get_certificate(cert.serial_number) == (cert, None)
        # forgotten: only an expired token could carry these ids, and it is refused before
        store.spend_token(expired)
        store.spend_token(expired_with_cert, token_expires_at=now + timedelta(minutes=5))
        assert store.purge(token_ids_expired_before=now) == Purged()
        with pytest.raises(TokenAlreadyUsed):
            store.spend_token(expired_with_cert)

    def test_purge_forgets_certificates_only_when_asked(self, store: CertificateStore) -> None:
        from stepca.store import Purged

        now = datetime.now(UTC).replace(microsecond=0)
        long_expired = _leaf(not_after=now - timedelta(days=100))
        expired = _leaf(not_after=now - timedelta(days=1))
        valid = _leaf()
        for cert in (long_expired, expired, valid):
            store.store_certificate(cert, provisioner=None, token_id=None)
        assert store.purge(token_ids_expired_before=now) == Purged()
        assert store.get_certificate(long_expired.serial_number) == (long_expired, None)
        assert store.purge(token_ids_expired_before=now,
                           certificates_expired_before=now - timedelta(days=90)) \
            == Purged(certificates=1)
        assert store.get_certificate(long_expired.serial_number) is None
        assert store.get_certificate(expired.serial_number) == (expired, None)
        assert store.get_certificate(valid.serial_number) == (valid, None)


class RevocationStoreContract:
    """What the authority needs from a ``RevocationStore``.

    Supply the fixture ``store``: a new, empty store, closed by the fixture afterwards. Set
    ``plugin`` to the plugin module (None for a built-in store).
    """

    plugin: ClassVar[object | None] = None

    def test_registered_as_revocation_store(self, store: RevocationStore) -> None:
        from stepca.store import RevocationStore

        assert isinstance(store, RevocationStore)
        registry = _registry(self.plugin, "revocation_stores")
        assert registry.get(str(type(store).type).lower()) is type(store)

    def test_revokes_and_lists(self, store: RevocationStore) -> None:
        serial = x509.random_serial_number()
        assert not store.is_revoked(serial)
        assert store.revoked_certificates() == []
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
        info = _revocation(serial, token_id=_token_id(), expires_at=expires)
        store.revoke(info)
        assert store.is_revoked(serial)
        assert not store.is_revoked(serial + 1)
        assert store.revoked_certificates() == [info]

    def test_keeps_every_field(self, store: RevocationStore) -> None:
        info = _revocation((1 << 158) | secrets.randbits(158), token_id=None, reason_code=4,
                           reason="superseded", mtls=True, expires_at=None)
        store.revoke(info)
        assert store.revoked_certificates() == [info]

    def test_revoking_twice_raises_already_revoked(self, store: RevocationStore) -> None:
        from stepca.store import AlreadyRevoked

        serial = x509.random_serial_number()
        first = _revocation(serial, token_id=_token_id())
        store.revoke(first)
        second_token = _token_id()
        with pytest.raises(AlreadyRevoked):
            store.revoke(_revocation(serial, token_id=second_token, reason="again"))
        assert store.revoked_certificates() == [first]
        # the refused request spent nothing: its token still works for another certificate
        other = _revocation(serial + 1, token_id=second_token)
        store.revoke(other)
        assert store.is_revoked(serial + 1)

    def test_a_replayed_token_is_refused_as_a_replay(self, store: RevocationStore) -> None:
        # even when its certificate is revoked by now: the client learns what went wrong
        from stepca.errors import TokenAlreadyUsed

        info = _revocation(x509.random_serial_number(), token_id=_token_id())
        store.revoke(info)
        with pytest.raises(TokenAlreadyUsed):
            store.revoke(info)
        assert store.revoked_certificates() == [info]

    def test_a_spent_token_revokes_nothing(self, store: RevocationStore) -> None:
        from stepca.errors import TokenAlreadyUsed

        token_id = _token_id()
        first, second = x509.random_serial_number(), x509.random_serial_number()
        store.revoke(_revocation(first, token_id=token_id))
        with pytest.raises(TokenAlreadyUsed):
            store.revoke(_revocation(second, token_id=token_id))
        assert not store.is_revoked(second)
        assert [i.serial for i in store.revoked_certificates()] == [first]

    def test_revocations_survive_close(self, store: RevocationStore) -> None:
        serial = x509.random_serial_number()
        store.revoke(_revocation(serial, token_id=_token_id()))
        store.close()
        assert store.is_revoked(serial)
        store.revoke(_revocation(serial + 1, token_id=None))
        assert len(store.revoked_certificates()) == 2

    def test_revocations_without_token(self, store: RevocationStore) -> None:
        # mTLS revocations carry no token; None is not an id to spend
        serials = [x509.random_serial_number() for _ in range(2)]
        for serial in serials:
            store.revoke(_revocation(serial, token_id=None, mtls=True))
        assert all(store.is_revoked(s) for s in serials)


    def test_finds_one_revocation(self, store: RevocationStore) -> None:
        serial = x509.random_serial_number()
        info = _revocation(serial, token_id=None)
        store.revoke(info)
        assert store.revocation(serial) == info
        assert store.revocation(serial + 1) is None

    def test_the_revocation_mark_grows_with_each_revocation(self,
                                                            store: RevocationStore) -> None:
        marks = [store.revocation_mark()]
        for _ in range(3):
            store.revoke(_revocation(x509.random_serial_number(), token_id=_token_id()))
            marks.append(store.revocation_mark())
        store.close()
        assert store.revocation_mark() == marks[-1]
        assert marks == sorted(set(marks)), marks

    def test_a_crl_keeps_the_revocation_mark_it_was_built_with(
            self, store: RevocationStore) -> None:
        from dataclasses import replace

        from stepca.errors import NotImplementedYet

        try:
            store.current_crl()
        except NotImplementedYet:
            pytest.skip("this revocation store keeps no CRL")
        store.revoke(_revocation(x509.random_serial_number(), token_id=None))
        mark = store.revocation_mark()
        built = store.next_crl(lambda number: replace(_crl(number), revocation_mark=mark))
        assert built.revocation_mark == mark
        assert store.current_crl() == built
        store.close()
        assert store.current_crl() == built

    def test_crl_numbers_grow_and_a_failed_build_keeps_nothing(
            self, store: RevocationStore) -> None:
        from stepca.errors import NotImplementedYet

        try:
            assert store.current_crl() is None
        except NotImplementedYet:
            pytest.skip("this revocation store keeps no CRL")
        first = store.next_crl(_crl)
        assert first.number == 1 and store.current_crl() == first
        second = store.next_crl(_crl)
        assert second.number == 2 and store.current_crl() == second

        def broken(number: int) -> Any:
            raise RuntimeError("signing failed")

        with pytest.raises(RuntimeError):
            store.next_crl(broken)
        assert store.current_crl() == second
        assert store.next_crl(_crl).number == 3

    def test_concurrent_crls_get_distinct_numbers(self, store: RevocationStore) -> None:
        from stepca.errors import NotImplementedYet

        try:
            store.current_crl()
        except NotImplementedYet:
            pytest.skip("this revocation store keeps no CRL")
        threads = 4
        barrier = threading.Barrier(threads, timeout=30)
        numbers: list[int] = []
        lock = threading.Lock()

        def take() -> None:
            barrier.wait()
            number = store.next_crl(_crl).number
            with lock:
                numbers.append(number)

        workers = [threading.Thread(target=take) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert sorted(numbers) == list(range(1, threads + 1))
        current = store.current_crl()
        assert current is not None and current.number == threads


class StoreContract(CertificateStoreContract, RevocationStoreContract):
    """For one class that is both stores (``db.type`` selects it once, as with ``sqlite``):
    both suites, plus one namespace of spent token ids for signing and revoking."""

    def test_sign_and_revoke_share_spent_tokens(self, store: Any) -> None:
        from stepca.errors import TokenAlreadyUsed

        cert = _leaf()
        sign_token = _token_id()
        store.store_certificate(cert, provisioner=None, token_id=sign_token)
        with pytest.raises(TokenAlreadyUsed):
            store.revoke(_revocation(cert.serial_number, token_id=sign_token))
        assert not store.is_revoked(cert.serial_number)

        revoke_token = _token_id()
        store.revoke(_revocation(cert.serial_number, token_id=revoke_token))
        other = _leaf()
        with pytest.raises(TokenAlreadyUsed):
            store.store_certificate(other, provisioner=None, token_id=revoke_token)
        assert store.get_certificate(other.serial_number) is None
        # revoking keeps the issued certificate on record
        assert store.get_certificate(cert.serial_number) == (cert, None)

    def test_a_revoked_certificate_is_not_renewed(self, store: Any) -> None:
        from stepca.store import CertificateRevoked

        old = _leaf()
        store.store_certificate(old, provisioner=None, token_id=None)
        store.revoke(_revocation(old.serial_number, token_id=None))
        new, token_id = _leaf(), _token_id()
        with pytest.raises(CertificateRevoked):
            store.store_renewed_certificate(new, renewed_from=old.serial_number,
                                            provisioner=None, token_id=token_id)
        assert store.get_certificate(new.serial_number) is None
        store.spend_token(token_id)  # the refused renewal spent nothing

    def test_no_renewal_lands_after_its_revocation_returned(self, store: Any) -> None:
        """A renewal and a revocation of one certificate race, many times. Whenever the renewal
        is stored, it must already be there when the revocation returns: the revocation check
        and the write are one step with respect to ``revoke``."""
        for _ in range(50):
            seen = _race_renewal_and_revocation(store)
            assert set(seen) == {"renewed", "stored when revoked"}, seen
            assert seen["renewed"] == seen["stored when revoked"], seen


    def test_purge_keeps_revocations_and_unexpired_revocation_tokens(self, store: Any) -> None:
        from stepca.errors import TokenAlreadyUsed
        from stepca.store import Purged

        now = datetime.now(UTC).replace(microsecond=0)
        cert = _leaf(not_after=now - timedelta(days=100))
        store.store_certificate(cert, provisioner=None, token_id=None)
        token_id = _token_id()
        info = _revocation(cert.serial_number, token_id=token_id)
        store.revoke(info, token_expires_at=now + timedelta(minutes=5))
        mark = store.revocation_mark()
        assert store.purge(token_ids_expired_before=now,
                           certificates_expired_before=now - timedelta(days=90)) \
            == Purged(certificates=1)
        assert store.get_certificate(cert.serial_number) is None
        assert store.is_revoked(cert.serial_number)  # the CRL and OCSP still need it
        assert store.revocation(cert.serial_number) == info
        assert store.revocation_mark() == mark
        with pytest.raises(TokenAlreadyUsed):
            store.revoke(_revocation(cert.serial_number + 1, token_id=token_id))
        assert store.purge(token_ids_expired_before=now + timedelta(minutes=6)) \
            == Purged(token_ids=1)


def _race_renewal_and_revocation(store: Any) -> dict[str, bool]:
    from stepca.store import CertificateRevoked

    old, new = _leaf(), _leaf()
    store.store_certificate(old, provisioner=None, token_id=None)
    barrier = threading.Barrier(2, timeout=30)
    seen: dict[str, bool] = {}

    def renew() -> None:
        barrier.wait()
        try:
            store.store_renewed_certificate(new, renewed_from=old.serial_number,
                                            provisioner=None, token_id=_token_id())
            seen["renewed"] = True
        except CertificateRevoked:
            seen["renewed"] = False

    def revoke() -> None:
        barrier.wait()
        store.revoke(_revocation(old.serial_number, token_id=None))
        seen["stored when revoked"] = store.get_certificate(new.serial_number) is not None

    workers = [threading.Thread(target=renew), threading.Thread(target=revoke)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return seen


# -- key stores ------------------------------------------------------------------------------------

class KeyStoreContract:
    """What the authority and ``step ca init`` need from a ``KeyStore``.

    Supply two fixtures:

    * ``key_store``: the store under test;
    * ``new_key_ref``: a callable ``name -> ref`` giving a reference (file path, KMS URI) under
      which no key exists yet; each name gives a different reference.

    Class settings: ``plugin`` (None for a built-in), ``password_protected`` (False for a store
    that ignores passwords, such as a KMS) and ``key_types`` (``(kty, curve, size)`` triples the
    store must create).
    """

    plugin: ClassVar[object | None] = None
    password_protected: ClassVar[bool] = True
    key_types: ClassVar[tuple[tuple[str, str, int], ...]] = (("EC", "P-256", 0),)

    def _require_passwords(self) -> None:
        if not self.password_protected:
            pytest.skip("this key store does not protect keys with a password")

    def test_registered_as_key_store(self, key_store: KeyStore) -> None:
        from stepca.keystore import KeyStore

        assert isinstance(key_store, KeyStore)
        registry = _registry(self.plugin, "key_stores")
        assert registry.get(str(type(key_store).type).lower()) is type(key_store)

    def test_loads_the_key_it_created(self, key_store: KeyStore,
                                      new_key_ref: Callable[[str], str]) -> None:
        ref = new_key_ref("intermediate")
        created = key_store.create_signer(ref, password=PASSWORD)
        loaded = key_store.load_signer(ref, password=PASSWORD)
        assert _spki(loaded) == _spki(created)

    def test_refuses_to_overwrite_a_key(self, key_store: KeyStore,
                                        new_key_ref: Callable[[str], str]) -> None:
        ref = new_key_ref("root")
        created = key_store.create_signer(ref, password=PASSWORD)
        with pytest.raises(FileExistsError):
            key_store.create_signer(ref, password=PASSWORD)
        assert _spki(key_store.load_signer(ref, password=PASSWORD)) == _spki(created)

    def test_refuses_a_wrong_password(self, key_store: KeyStore,
                                      new_key_ref: Callable[[str], str]) -> None:
        self._require_passwords()
        ref = new_key_ref("guarded")
        key_store.create_signer(ref, password=PASSWORD)
        with pytest.raises(ValueError):
            key_store.load_signer(ref, password=b"not-" + PASSWORD)
        with pytest.raises(ValueError):
            key_store.load_signer(ref, password=None)

    def test_unknown_reference_raises_key_not_found(self, key_store: KeyStore,
                                                    new_key_ref: Callable[[str], str]) -> None:
        from stepca.keystore import KeyNotFound

        with pytest.raises(KeyNotFound):
            key_store.load_signer(new_key_ref("never-created"), password=PASSWORD)

    def test_key_signs_certificates_that_verify(self, key_store: KeyStore,
                                                new_key_ref: Callable[[str], str]) -> None:
        ref = new_key_ref("issuer")
        key_store.create_signer(ref, password=PASSWORD)
        signer = key_store.load_signer(ref, password=PASSWORD)
        ca = _issue(signer, cn="Contract CA", ca=True)
        ca.verify_directly_issued_by(ca)
        leaf = _issue(signer, subject_key=ec.generate_private_key(ec.SECP256R1()), issuer=ca)
        leaf.verify_directly_issued_by(ca)
        # and a certificate from another key does not verify against this one
        stranger = _issue(ec.generate_private_key(ec.SECP256R1()), cn="Contract CA")
        with pytest.raises(InvalidSignature):
            leaf.verify_directly_issued_by(stranger)

    def test_creates_each_key_type(self, key_store: KeyStore,
                                   new_key_ref: Callable[[str], str]) -> None:
        for kty, curve, size in self.key_types:
            ref = new_key_ref(f"{kty}-{curve}-{size}".lower())
            kwargs: dict[str, Any] = {"kty": kty, "curve": curve}
            if size:
                kwargs["size"] = size
            key_store.create_signer(ref, password=PASSWORD, **kwargs)
            signer = key_store.load_signer(ref, password=PASSWORD)
            public = signer.public_key()
            if kty == "EC":
                assert isinstance(public, ec.EllipticCurvePublicKey)
                assert public.curve.name == {"P-256": "secp256r1", "P-384": "secp384r1",
                                             "P-521": "secp521r1"}[curve]
            elif kty == "RSA":
                assert isinstance(public, rsa.RSAPublicKey) and public.key_size == size
            else:
                assert isinstance(public, ed25519.Ed25519PublicKey)
            cert = _issue(signer, ca=True)
            cert.verify_directly_issued_by(cert)


# -- provisioners ----------------------------------------------------------------------------------

def _tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed and its signature kept."""
    from stepca.jose import b64url_decode, b64url_encode

    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])


class _ProvisionerFixtures:
    """The provisioner of ``provisioner_config``, built as the CA builds it."""

    plugin: ClassVar[object]

    @pytest.fixture
    def provisioner_context(self) -> ProvisionerContext:
        from stepca.provisioner import Audiences, Claims, ProvisionerContext
        from stepca.timeutil import utcnow

        # started long ago, so only the check a test aims at can refuse its token
        return ProvisionerContext(audiences=Audiences.for_dns_names(DNS_NAMES), claims=Claims(),
                                  clock=utcnow, started_at=utcnow() - timedelta(days=1))

    @pytest.fixture
    def provisioner(self, provisioner_config: dict[str, Any],
                    provisioner_context: ProvisionerContext) -> Provisioner:
        types = _registry(self.plugin, "provisioner_types")
        cls = types[str(provisioner_config["type"]).lower()]
        return cls.from_config(provisioner_config, context=provisioner_context)


class ProvisionerClientContract(_ProvisionerFixtures):
    """What ``step ca token``/``certificate`` need from a provisioner type's client side.

    Set ``plugin`` to the module holding the plugin's ``@hookimpl`` functions (the suite finds
    the client through ``stepca_provisioner_clients`` and the CA side through
    ``stepca_provisioner_types``, as the CLI and the CA do). Supply two fixtures:

    * ``provisioner_config``: the provisioner's ca.json entry;
    * ``token_request``: ``token_request(subject, *, sans, audience) -> TokenRequest``, the
      request the CLI would build for that provisioner, with the credential the plugin's test
      environment provides (a password, a key file, a metadata emulator's address, ...).

    The suite checks that the client's token is one the plugin's own provisioner accepts, for
    the audience asked and no other.
    """

    @pytest.fixture
    def provisioner_client(self, provisioner_config: dict[str, Any]) -> ProvisionerClient:
        registrations = _registry(self.plugin, "provisioner_clients")
        return registrations[str(provisioner_config["type"]).lower()].load()()

    def test_registered_for_its_type(self, provisioner_config: dict[str, Any]) -> None:
        from typing import get_args

        from stepca.provisioner_client import ClientFlag, ProvisionerClient

        registration = _registry(self.plugin, "provisioner_clients")[
            str(provisioner_config["type"]).lower()]
        cls = registration.load()
        assert isinstance(cls, type) and issubclass(cls, ProvisionerClient)
        assert cls.type.lower() == registration.type.lower()
        assert cls.flags <= set(get_args(ClientFlag))

    def test_its_token_authorizes_a_sign(self, provisioner: Provisioner,
                                         provisioner_client: ProvisionerClient,
                                         token_request: MakeTokenRequest) -> None:
        from stepca.jose import parse_unverified

        token = provisioner_client.token(token_request(
            "client.example.com", sans=["client.example.com"], audience=SIGN_AUDIENCE))
        assert isinstance(token, str) and token.count(".") == 2
        options = provisioner.authorize_sign(parse_unverified(token))
        assert options.token_id

    def test_a_token_for_another_ca_is_refused(self, provisioner: Provisioner,
                                               provisioner_client: ProvisionerClient,
                                               token_request: MakeTokenRequest) -> None:
        from stepca.errors import Unauthorized
        from stepca.jose import parse_unverified

        token = provisioner_client.token(token_request(
            "client.example.com", sans=["client.example.com"],
            audience="https://elsewhere.example:9000/1.0/sign"))
        with pytest.raises(Unauthorized):
            provisioner.authorize_sign(parse_unverified(token))


class ProvisionerContract(_ProvisionerFixtures):
    """What the authority needs from a ``Provisioner`` whose credential is a signed token.

    Set ``plugin`` to the module holding the plugin's ``@hookimpl`` functions (the suite finds
    the class through ``stepca_provisioner_types``, as the CA does). Supply two fixtures:

    * ``provisioner_config``: the provisioner's ca.json entry (a dict with ``type`` and ``name``);
    * ``sign_token``: ``sign_token(subject, *, sans, audience, lifetime=timedelta(minutes=5),
      now=None, **claims) -> str``, a token this provisioner should accept for ``/sign``, made
      as its clients make them; each keyword in ``claims`` replaces that claim, and None
      removes it.

    The suite builds the provisioner for a CA whose ``dnsNames`` are localhost and 127.0.0.1;
    tokens use the audience ``https://localhost:9000/1.0/sign``. Override the
    ``provisioner_context`` fixture to change that.
    """

    @staticmethod
    def _authorize(provisioner: Provisioner, token: str) -> Any:
        from stepca.jose import parse_unverified

        return provisioner.authorize_sign(parse_unverified(token))

    def _refused(self, provisioner: Provisioner, token: str) -> str:
        from stepca.errors import Unauthorized

        with pytest.raises(Unauthorized) as refused:
            self._authorize(provisioner, token)
        return refused.value.message

    def test_built_from_its_config(self, provisioner: Provisioner,
                                   provisioner_config: dict[str, Any]) -> None:
        from stepca.provisioner import Provisioner

        assert isinstance(provisioner, Provisioner)
        assert provisioner.name == provisioner_config["name"]
        assert type(provisioner).type.lower() == str(provisioner_config["type"]).lower()
        assert provisioner.lookup_keys and provisioner.id

    def test_config_without_name_is_refused(self, provisioner_config: dict[str, Any],
                                            provisioner_context: ProvisionerContext) -> None:
        cls = _registry(self.plugin, "provisioner_types")[str(provisioner_config["type"]).lower()]
        config = {k: v for k, v in provisioner_config.items() if k != "name"}
        with pytest.raises(ValueError):
            cls.from_config(config, context=provisioner_context)

    def test_public_json_is_json(self, provisioner: Provisioner) -> None:
        listed = json.loads(json.dumps(provisioner.public_json()))
        assert listed["name"] == provisioner.name
        assert str(listed["type"]).lower() == type(provisioner).type.lower()

    def test_its_tokens_find_it(self, provisioner: Provisioner, sign_token: SignToken) -> None:
        from stepca.jose import parse_unverified

        token = parse_unverified(sign_token("a.example", sans=["a.example"],
                                            audience=SIGN_AUDIENCE))
        assert type(provisioner).token_lookup_key(token) in provisioner.lookup_keys

    def test_authorizes_a_valid_token(self, provisioner: Provisioner,
                                      sign_token: SignToken) -> None:
        from stepca.provisioner import Claims, SignOptions
        from stepca.testing import make_csr
        from stepca.x509util import split_sans

        sans = ["a.example", "b.example", "10.0.0.7"]
        options = self._authorize(provisioner, sign_token("a.example", sans=sans,
                                                          audience=SIGN_AUDIENCE))
        assert isinstance(options, SignOptions)
        assert options.subject == "a.example"
        assert options.sans == split_sans(sans)
        assert isinstance(options.token_id, str) and options.token_id
        assert isinstance(options.claims, Claims)
        csr_pem, _ = make_csr("a.example", sans)
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        for validate in options.validators:
            validate(csr)

    def test_authorizing_spends_nothing(self, provisioner: Provisioner,
                                        sign_token: SignToken) -> None:
        # the authority spends the id once every check passed; the provisioner only reads
        token = sign_token("a.example", sans=["a.example"], audience=SIGN_AUDIENCE)
        first = self._authorize(provisioner, token)
        again = self._authorize(provisioner, token)
        other = self._authorize(provisioner, sign_token("a.example", sans=["a.example"],
                                                        audience=SIGN_AUDIENCE))
        assert first.token_id == again.token_id != other.token_id

    def test_validators_refuse_names_not_in_the_token(self, provisioner: Provisioner,
                                                      sign_token: SignToken) -> None:
        from stepca.errors import StepCAError
        from stepca.testing import make_csr

        options = self._authorize(provisioner, sign_token("a.example", sans=["a.example"],
                                                          audience=SIGN_AUDIENCE))
        for subject, sans in (("evil.example", ["evil.example"]),
                              ("a.example", ["a.example", "evil.example"])):
            csr = x509.load_pem_x509_csr(make_csr(subject, sans)[0].encode())
            with pytest.raises(StepCAError) as refused:
                for validate in options.validators:
                    validate(csr)
            assert refused.value.status == 403

    def test_refuses_a_tampered_payload(self, provisioner: Provisioner,
                                        sign_token: SignToken) -> None:
        token = sign_token("a.example", sans=["a.example"], audience=SIGN_AUDIENCE)
        self._refused(provisioner, _tamper(token, sub="evil.example", sans=["evil.example"]))

    def test_refuses_a_tampered_signature(self, provisioner: Provisioner,
                                          sign_token: SignToken) -> None:
        from stepca.jose import b64url_decode, b64url_encode

        token = sign_token("a.example", sans=["a.example"], audience=SIGN_AUDIENCE)
        signing_input, _, signature = token.rpartition(".")
        raw = bytearray(b64url_decode(signature))
        raw[len(raw) // 2] ^= 0x01
        self._refused(provisioner, f"{signing_input}.{b64url_encode(bytes(raw))}")

    def test_refuses_an_unsigned_token(self, provisioner: Provisioner,
                                       sign_token: SignToken) -> None:
        from stepca.jose import b64url_decode, b64url_encode

        token = sign_token("a.example", sans=["a.example"], audience=SIGN_AUDIENCE)
        header = json.loads(b64url_decode(token.split(".")[0]))
        header["alg"] = "none"
        unsigned = f"{b64url_encode(json.dumps(header).encode())}.{token.split('.')[1]}."
        self._refused(provisioner, unsigned)

    def test_refuses_another_audience(self, provisioner: Provisioner,
                                      sign_token: SignToken) -> None:
        for audience in ("https://ca.elsewhere.example/1.0/sign", REVOKE_AUDIENCE):
            self._refused(provisioner, sign_token("a.example", sans=["a.example"],
                                                  audience=audience))

    def test_refuses_an_expired_token(self, provisioner: Provisioner,
                                      sign_token: SignToken) -> None:
        from stepca.timeutil import utcnow

        self._refused(provisioner, sign_token("a.example", sans=["a.example"],
                                              audience=SIGN_AUDIENCE,
                                              now=utcnow() - timedelta(minutes=30)))

    def test_refuses_a_token_not_yet_valid(self, provisioner: Provisioner,
                                           sign_token: SignToken) -> None:
        from stepca.timeutil import utcnow

        self._refused(provisioner, sign_token("a.example", sans=["a.example"],
                                              audience=SIGN_AUDIENCE,
                                              now=utcnow() + timedelta(minutes=10)))

    def test_refuses_a_token_without_exp(self, provisioner: Provisioner,
                                         sign_token: SignToken) -> None:
        self._refused(provisioner, sign_token("a.example", sans=["a.example"],
                                              audience=SIGN_AUDIENCE, exp=None))

    def test_refuses_a_token_living_over_an_hour(self, provisioner: Provisioner,
                                                 sign_token: SignToken) -> None:
        self._refused(provisioner, sign_token("a.example", sans=["a.example"],
                                              audience=SIGN_AUDIENCE,
                                              lifetime=timedelta(hours=3)))
