"""ca.json's ``dataSource`` reaches libpq as written (docs/deployment.md): its query carries
libpq's own parameters, such as a password file or the TLS mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepca.store import StoreStartError
from stepca.testing.postgres import PostgresCluster, postgres_cluster
from stepca_store_postgresql import PostgreSQLStore

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


def test_a_password_file_and_an_application_name_in_the_query_reach_libpq(
        pg: PostgresCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg.port}:{pg.database}:{pg.user}:{pg.password}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    source = (f"postgresql://{pg.user}@127.0.0.1:{pg.port}/"
              f"?passfile={passfile}&application_name=stepca-guide-check")
    store = PostgreSQLStore.from_config({"dataSource": source, "database": pg.database},
                                        steppath=tmp_path)
    try:
        assert store.is_revoked(1) is False  # a pooled connection, opened with the query
        names = pg.psql("SELECT application_name FROM pg_stat_activity "
                        f"WHERE datname = '{pg.database}' AND usename = '{pg.user}'")
        assert "stepca-guide-check" in names.split("\n")
    finally:
        store.close()


def test_a_tls_mode_in_the_query_reaches_libpq(pg: PostgresCluster,
                                              tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the test server has no TLS: libpq, told to require it, refuses to go on without
    with pytest.raises(StoreStartError) as raised:
        PostgreSQLStore.from_config({"dataSource": f"{pg.dsn}?sslmode=require",
                                     "database": pg.database}, steppath=tmp_path)
    message = str(raised.value)
    assert "SSL" in message and pg.password not in message
