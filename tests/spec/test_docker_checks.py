"""Docker services at validation time: the seed's security controls (SEC-D7..D10), each reported
at its file:line, and the docker-only fields."""

from __future__ import annotations

import pytest

from gpumod.spec import PresetCatalog, resolve_service
from gpumod.spec.checks import mount_risk, normalise_host_path

from ._helpers import loaded, problems_of

CATALOG = PresetCatalog.load()


def docker(extra: str = "") -> str:
    return "kind: Service\nname: web\ndriver: docker\nimage: ghcr.io/acme/web:1.2\nport: 8080\nvram_mb: 100\n" + extra


def test_a_docker_service_validates_and_resolves(repo) -> None:
    root = repo(
        **{
            "svc.yaml": docker(
                "container_port: 80\nports: ['9100:9100', '5353:53/udp']\nnetwork: gpumod-net\nshm_size: 16g\n"
                "privileged: false\nvolumes:\n  - /data/hf:/root/.cache/huggingface:ro\n  - hf-cache:/cache\n"
                "  - /var/lib/models:/models\ncommand: [serve, --port, '{port}']\n"
            )
        }
    )
    specs = loaded(root)
    svc = resolve_service(specs.service("web"), CATALOG, gpu_name=None, source="specs/svc.yaml:1")
    assert (svc.image, svc.container_port, svc.ports, svc.network, svc.shm_size) == (
        "ghcr.io/acme/web:1.2", 80, ("9100:9100", "5353:53/udp"), "gpumod-net", "16g",
    )
    assert svc.volumes == ("/data/hf:/root/.cache/huggingface:ro", "hf-cache:/cache", "/var/lib/models:/models")
    moved = resolve_service(
        specs.service("web").model_copy(update={"volumes": ["/data/hf:/hf"]}), CATALOG, gpu_name=None, source=""
    )
    assert moved.spec_hash() != svc.spec_hash()  # docker fields are part of the spec hash


def test_an_image_is_required(repo) -> None:
    root = repo(**{"svc.yaml": "kind: Service\nname: web\ndriver: docker\nport: 8080\nvram_mb: 100\n"})
    assert problems_of(root) == [
        "specs/svc.yaml:1: service web (driver docker) has no image; set image: <repository:tag>"
    ]


def test_sec_d7_privileged_is_refused(repo) -> None:
    root = repo(**{"svc.yaml": docker("privileged: true\n")})
    assert problems_of(root) == [
        "specs/svc.yaml:7: service web: privileged containers are refused (SEC-D7): they can take over the pod; "
        "remove privileged: true (GPUs come through --gpus without it)"
    ]


@pytest.mark.parametrize(
    ("network", "reason"),
    [
        ("host", "the container would share the pod's network stack"),
        ("HOST", "the container would share the pod's network stack"),
        ("macvlan", "it puts the container directly on the physical network"),
        ("ipvlan", "it puts the container directly on the physical network"),
        ("container:other", "it joins another container's network namespace, which may be the host's"),
    ],
)
def test_sec_d8_host_and_macvlan_networks_are_refused(repo, network: str, reason: str) -> None:
    root = repo(**{"svc.yaml": docker(f"network: {network}\n")})
    assert problems_of(root) == [
        f"specs/svc.yaml:7: service web: network {network} is refused (SEC-D8): {reason}; leave network unset "
        "(bridge: the port is published on 127.0.0.1 of the pod)"
    ]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("/", "/ is the whole host"),
        ("//", "/ is the whole host"),
        ("/data/..", "/ is the whole host"),
        ("/etc", "/etc holds the host's configuration and credentials"),
        ("/etc/", "/etc holds the host's configuration and credentials"),
        ("/etc/../etc", "/etc holds the host's configuration and credentials"),
        ("//etc//ssh", "/etc holds the host's configuration and credentials"),
        ("/./etc/passwd", "/etc holds the host's configuration and credentials"),
        ("/var/run/docker.sock", "it is a container runtime socket, i.e. root on the pod"),
        ("/run/docker.sock", "it is a container runtime socket, i.e. root on the pod"),
        ("/var//run/./docker.sock", "it is a container runtime socket, i.e. root on the pod"),
        ("/home/me/docker.sock", "it is a container runtime socket, i.e. root on the pod"),
        ("/run", "it holds runtime sockets such as the Docker socket, i.e. root on the pod"),
        ("/var/run/", "it holds runtime sockets such as the Docker socket, i.e. root on the pod"),
        ("/var", "it contains /var/run: it holds runtime sockets such as the Docker socket, i.e. root on the pod"),
        ("/proc", "it exposes the host kernel"),
        ("/dev/nvidia0", "it exposes the host's devices (GPUs come from --gpus)"),
    ],
)
def test_sec_d9_unsafe_mounts_are_refused_after_normalising(repo, source: str, reason: str) -> None:
    root = repo(**{"svc.yaml": docker(f"volumes:\n  - /data:/data\n  - '{source}:/host:ro'\n")})
    assert problems_of(root) == [
        f"specs/svc.yaml:9: service web: volume source {source} is refused (SEC-D9): {reason}; "
        "mount only the folders the service needs"
    ]


@pytest.mark.parametrize("source", ["/data", "/etcetera", "/srv/etc", "/var/lib/models", "/home/u/.cache", "/runs"])
def test_ordinary_folders_may_be_mounted(source: str) -> None:
    assert mount_risk(source) is None


def test_normalise_host_path() -> None:
    assert normalise_host_path("//etc/./x/../") == "/etc"
    assert normalise_host_path("/../../") == "/"


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ("/data", "volume '/data' is not 'source:/path/in/container[:ro]'; write host-path:/container/path"),
        ("/a:/b:ro:x", "volume '/a:/b:ro:x' is not 'source:/path/in/container[:ro]'; write host-path:/container/path"),
        ("~/models:/models", "volume source '~/models' is neither an absolute path nor a volume name; "
         "write an absolute host path (~ is not expanded)"),
        ("data/models:/models", "volume source 'data/models' is neither an absolute path nor a volume name; "
         "write an absolute host path (~ is not expanded)"),
        ("/data:models", "volume target 'models' is not an absolute path in the container"),
        ("/data:/models:rshared", "volume '/data:/models:rshared': mode 'rshared' is not ro or rw"),
    ],
)
def test_volume_shapes(repo, volume: str, message: str) -> None:
    root = repo(**{"svc.yaml": docker(f"volumes: ['{volume}']\n")})
    assert problems_of(root) == [f"specs/svc.yaml:7: service web: {message}"]


def test_sec_d10_env_keys_are_names(repo) -> None:
    root = repo(**{"svc.yaml": docker("env:\n  'A=B': x\n")})
    assert problems_of(root) == [
        "specs/svc.yaml:8: env.A=B: 'A=B' is not a valid variable name; use letters, digits and '_' (no digit first)"
    ]


@pytest.mark.parametrize("image", ["--privileged", "-v", "img with space", ""])
def test_an_image_cannot_smuggle_options(repo, image: str) -> None:
    root = repo(**{"svc.yaml": docker().replace("ghcr.io/acme/web:1.2", repr(image))})
    problems = problems_of(root)
    assert len(problems) == 1 and problems[0].startswith("specs/svc.yaml:4: image: string should match pattern")


def test_ports_network_and_shm_shapes(repo) -> None:
    root = repo(
        **{"svc.yaml": docker("ports: ['8080:80', '99999:1', '1-2:3']\nnetwork: --privileged\nshm_size: lots\n")}
    )
    problems = problems_of(root)
    # the malformed mapping does not hide what is wrong with the other two (issue 6)
    assert [p.split(": ")[0] for p in problems] == ["specs/svc.yaml:7"] * 3 + ["specs/svc.yaml:8", "specs/svc.yaml:9"]
    assert "port mapping 99999:1 needs ports from 1 to 65535" in problems[2]
    root = repo(**{"svc.yaml": docker("ports: ['8080:80', '99999:1']\n")})
    assert problems_of(root) == [
        "specs/svc.yaml:7: service web: port mapping 8080:80 publishes its own port 8080 again; set "
        "container_port instead",
        "specs/svc.yaml:7: service web: port mapping 99999:1 needs ports from 1 to 65535",
    ]


def test_docker_fields_on_other_drivers_and_cwd_on_docker(repo) -> None:
    svc = (
        "kind: Service\nname: app\ndriver: command\ncommand: [x]\nport: 1\nvram_mb: 1\nimage: a/b\nvolumes: "
        "['/etc:/e']\n"
    )
    root = repo(**{"a.yaml": svc, "b.yaml": docker("cwd: /srv\nsleep: l1\n")})
    assert problems_of(root) == [
        "specs/a.yaml:7: service app: image applies only to driver docker; remove it or set driver: docker",
        "specs/a.yaml:8: service app: volume source /etc is refused (SEC-D9): /etc holds the host's configuration "
        "and credentials; mount only the folders the service needs",
        "specs/a.yaml:8: service app: volumes applies only to driver docker; remove it or set driver: docker",
        "specs/b.yaml:7: service web: cwd does not apply to driver docker (the image sets its working "
        "directory); remove it",
        "specs/b.yaml:8: driver docker cannot sleep at level l1; use sleep: none",
    ]
