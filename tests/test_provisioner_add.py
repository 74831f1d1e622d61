"""`step ca provisioner add`: the flags a type's plugin declares become its ca.json entry,
written as step writes it when the CA has no admin API; anything wrong is refused with one
line and leaves ca.json as it was."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stepca.provisioner import Claims
from stepca.provisioner_client import ClientRegistration, ProvisionerOption
from stepca.testing.process import run_step
from stepca_cli.errors import StepError
from stepca_cli.provisioner_config import declared_options, provisioner_entry


@pytest.fixture
def ca_json(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "ca.json"
    path.parent.mkdir()
    path.write_text(json.dumps({
        "root": "root_ca.crt", "db": {"type": "sqlite", "dataSource": "db"},
        "authority": {"provisioners": [{"type": "JWK", "name": "admin", "key": {"kty": "EC"}}],
                      "claims": {"maxTLSCertDuration": "48h"}},
        "somethingOfAnotherPlugin": {"kept": True}}, indent="\t"))
    path.chmod(0o640)
    return path


def _add(ca_json: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    env["STEPPATH"] = str(ca_json.parent.parent / "step")
    return run_step("ca", "provisioner", "add", *args, "--ca-config", str(ca_json), env=env,
                    check=False)


def test_a_gcp_provisioner_is_written_with_steps_keys(ca_json: Path) -> None:
    done = _add(ca_json, "Google Cloud", "--type", "gcp", "--gcp-project", "a",
                "--gcp-project", "b", "--gcp-service-account", "web@a.iam.gserviceaccount.com",
                "--instance-age", "1h30m", "--disable-custom-sans", "--disable-tofu",
                "--x509-default-dur", "36h", "--disable-renewal")
    assert done.returncode == 0, done.stderr
    assert "config has been updated" in done.stderr and done.stdout == ""
    config = json.loads(ca_json.read_text())
    assert config["somethingOfAnotherPlugin"] == {"kept": True}
    admin, added = config["authority"]["provisioners"]
    assert admin["name"] == "admin"
    assert added == {"type": "GCP", "name": "Google Cloud", "projectIDs": ["a", "b"],
                     "serviceAccounts": ["web@a.iam.gserviceaccount.com"],
                     "instanceAge": "1h30m", "disableCustomSANs": True,
                     "disableTrustOnFirstUse": True,
                     "claims": {"defaultTLSCertDuration": "36h", "disableRenewal": True}}
    assert stat.S_IMODE(ca_json.stat().st_mode) == 0o640  # the operator's mode is kept
    assert ca_json.read_text().startswith("{\n\t")  # tab-indented, as step writes it


@pytest.mark.parametrize(("args", "reason"), [
    (("admin", "--type", "GCP"), "a provisioner named 'admin' already exists"),
    (("x", "--type", "Nope"), "provisioner type Nope is not installed: pip install stepca-nope"),
    # the flags of a type that is not installed are unknown: the reason is the missing plugin
    (("x", "--nope-region", "r", "--type=Nope"), "not installed: pip install stepca-nope"),
    (("x", "--type", "GCP", "--instance-age", "1 hour"), "--instance-age': invalid duration"),
    (("x", "--type", "GCP", "--gcp-project", ""), "'--gcp-project' cannot be empty"),
    (("x", "--type", "GCP", "--x509-default-dur", "72h", "--x509-max-dur", "60h"),
     "defaultTLSCertDuration must be"),
    # under the global 48h maximum this ca.json sets, which a provisioner cannot lower below
    (("x", "--type", "GCP", "--x509-min-dur", "50h"), "cannot be less than minTLSCertDuration"),
    (("x", "--type", "GCP", "--x509-min-dur", "2h", "--x509-max-dur", "1h"),
     "maxTLSCertDuration cannot be less than minTLSCertDuration"),
    (("x", "--type", "JWK"), "requires the '--create' flag or the '--public-key' flag"),
    (("x", "--type", "GCP", "--aws-account", "1"),
     "flag '--aws-account' is not used by provisioners of type GCP"),
    (("x", "--type", "Azure", "--azure-resource-group", "prod"),
     "'step ca provisioner add --type Azure' requires the '--azure-tenant' flag"),
    (("x", "--type", "Azure", "--azure-tenant", "t", "--instance-age", "1h"),
     "flag '--instance-age' is not used by provisioners of type Azure"),
    (("x", "--type", "AWS", "--iid-roots", "/nonexistent.pem"),
     "'--iid-roots': /nonexistent.pem is not a readable file"),
    (("   ", "--type", "GCP"), "the provisioner name cannot be empty"),
])
def test_refusals_are_one_line_and_change_nothing(ca_json: Path, args: tuple[str, ...],
                                                  reason: str) -> None:
    before = ca_json.read_bytes()
    done = _add(ca_json, *args)
    assert done.returncode == 1 and reason in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert ca_json.read_bytes() == before


def test_a_ca_json_that_is_not_one_is_refused(tmp_path: Path) -> None:
    missing = _add(tmp_path / "config" / "ca.json", "x", "--type", "GCP")
    assert missing.returncode == 1 and "error reading" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    done = _add(broken, "x", "--type", "GCP")
    assert done.returncode == 1 and "not JSON" in done.stderr
    broken.write_text("[]")
    done = _add(broken, "x", "--type", "GCP")
    assert done.returncode == 1 and "not a ca.json object" in done.stderr


def test_an_aws_provisioner_is_written_with_steps_keys(ca_json: Path) -> None:
    roots = ca_json.parent / "roots.pem"
    roots.write_text("-----BEGIN CERTIFICATE-----\n")  # the CA checks the content at start-up
    done = _add(ca_json, "aws", "--type", "AWS", "--aws-account", "123456789012",
                "--aws-account", "210987654321", "--iid-roots", str(roots), "--instance-age",
                "5m", "--disable-trust-on-first-use")
    assert done.returncode == 0, done.stderr
    added = json.loads(ca_json.read_text())["authority"]["provisioners"][-1]
    assert added == {"type": "AWS", "name": "aws",
                     "accounts": ["123456789012", "210987654321"], "iidRoots": str(roots),
                     "instanceAge": "5m", "disableTrustOnFirstUse": True}


def test_an_azure_provisioner_is_written_with_steps_keys(ca_json: Path) -> None:
    done = _add(ca_json, "azure", "--type", "azure", "--azure-tenant", "t-1",
                "--azure-resource-group", "prod", "--azure-resource-group", "staging",
                "--azure-subscription-id", "s-1", "--azure-object-id", "o-1",
                "--azure-audience", "https://management.usgovcloudapi.net/",
                "--disable-custom-sans")
    assert done.returncode == 0, done.stderr
    added = json.loads(ca_json.read_text())["authority"]["provisioners"][-1]
    assert added == {"type": "Azure", "name": "azure", "tenantID": "t-1",
                     "resourceGroups": ["prod", "staging"], "subscriptionIDs": ["s-1"],
                     "objectIDs": ["o-1"], "audience": "https://management.usgovcloudapi.net/",
                     "disableCustomSANs": True}


def test_the_help_lists_the_installed_types_flags() -> None:
    shown = run_step("ca", "provisioner", "add", "--help", env=dict(os.environ)).stdout
    for flag in ("--gcp-project", "--aws-account", "--iid-roots", "--azure-tenant",
                 "--azure-object-id", "--instance-age", "--disable-trust-on-first-use, "
                 "--disable-tofu", "--x509-max-dur", "--ca-config"):
        assert flag in shown


# -- the declarations, in process ------------------------------------------------------------------

@dataclass
class _Plugins:
    registrations: dict[str, ClientRegistration]

    def provisioner_clients(self) -> dict[str, ClientRegistration]:
        return self.registrations


def _registration(kind: str, *options: ProvisionerOption) -> ClientRegistration:
    return ClientRegistration(kind, lambda: NotImplemented, options=options)


def test_a_flag_two_plugins_declare_with_other_meanings_is_refused() -> None:
    one = _registration("ONE", ProvisionerOption("region", "region", "text", "A region."))
    two = _registration("TWO", ProvisionerOption("region", "regions", "list", "Regions."))
    with pytest.raises(StepError, match="'--region' is declared with two meanings"):
        declared_options(_Plugins({"one": one, "two": two}))  # type: ignore[arg-type]
    same = _registration("THREE", ProvisionerOption("region", "region", "text", "Other words."))
    assert "region" in declared_options(_Plugins({"one": one, "three": same}))  # type: ignore[arg-type]


def test_a_flag_of_another_type_and_a_missing_required_flag_are_refused(tmp_path: Path) -> None:
    roots = ProvisionerOption("roots", "roots", "file", "Roots.")
    tenant = ProvisionerOption("tenant", "tenantID", "text", "Tenant.", required=True)
    kind = _registration("KIND", roots, tenant)
    with pytest.raises(StepError, match="'--zone' is not used by provisioners of type KIND"):
        provisioner_entry("x", kind, {"tenant": "t", "zone": "z"}, Claims())
    with pytest.raises(StepError, match="requires the '--tenant' flag"):
        provisioner_entry("x", kind, {}, Claims())
    with pytest.raises(StepError, match="is not a readable file"):
        provisioner_entry("x", kind, {"tenant": "t", "roots": str(tmp_path / "none")}, Claims())
    pem = tmp_path / "roots.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    entry = provisioner_entry("x", kind, {"tenant": "t", "roots": os.path.relpath(pem)},
                              Claims())
    assert entry == {"type": "KIND", "name": "x", "tenantID": "t", "roots": str(pem)}


def test_a_type_without_options_cannot_be_added(ca_json: Path) -> None:
    from stepca_cli.provisioner_config import add_provisioner

    plugins = _Plugins({"bare": _registration("BARE")})
    with pytest.raises(StepError, match="declares no flags for 'step ca provisioner add'"):
        add_provisioner(plugins, ca_json, "x", "bare", {})  # type: ignore[arg-type]


def test_key_less_options_go_to_the_clients_edit_entry(tmp_path: Path) -> None:
    from stepca.provisioner_client import ProvisionerClient

    seen: list[tuple[dict[str, Any], dict[str, Any], bool]] = []

    class Client(ProvisionerClient):
        type = "KIND"

        def token(self, request: Any) -> str:
            raise NotImplementedError

        def edit_entry(self, entry: dict[str, Any], inputs: Any, *, adding: bool,
                       command: str) -> None:
            seen.append((dict(entry), dict(inputs), adding))
            if inputs.get("secret") == "bad":
                raise ValueError("the secret is bad")
            entry["made"] = inputs["secret"].upper()

    options = (ProvisionerOption("secret", None, "text", "A secret."),
               ProvisionerOption("zone", "zone", "text", "A zone."))
    kind = ClientRegistration("KIND", lambda: Client, options=options)
    entry = provisioner_entry("x", kind, {"secret": "s", "zone": "z"}, Claims())
    assert entry == {"type": "KIND", "name": "x", "zone": "z", "made": "S"}
    assert seen == [({"type": "KIND", "name": "x", "zone": "z"}, {"secret": "s"}, True)]
    with pytest.raises(StepError, match="^the secret is bad$"):
        provisioner_entry("x", kind, {"secret": "bad"}, Claims())
    # a type whose options all write keys never imports its client to add
    plain = ClientRegistration("PLAIN", lambda: pytest.fail("client imported"),
                               options=options[1:])
    assert provisioner_entry("y", plain, {"zone": "z"}, Claims())["zone"] == "z"
