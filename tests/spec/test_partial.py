"""One mistake hides nothing: every problem of every document in one run (issue 6).

A document with a mistake is still checked against the others on its valid part
(``gpumod.spec.partial``); a check that reads a key whose value is unknown stays silent.
"""

from __future__ import annotations

from ._helpers import problems_of

POD = "kind: Pod\nname: p\nhost: sim\nmode: m\ngpus: [{name: G, memory_mb: 10000}]\n"
MODE = "kind: Mode\nname: m\nservices: [d]\n"


def test_an_unknown_key_in_the_pod_does_not_hide_its_unknown_mode(repo) -> None:
    root = repo(**{"p.yaml": "kind: Pod\nname: p\nhost: sim\nmode: nosuch\nmodee: x\ngpus: [{name: G, memory_mb: 1}]\n"
                   "---\nkind: Mode\nname: m\n"})
    assert problems_of(root) == [
        "specs/p.yaml:4: mode 'nosuch' is not defined; define a Mode named 'nosuch' or use one of: m",
        "specs/p.yaml:5: unknown key 'modee'; did you mean 'mode'?",
    ]


def test_a_bad_env_key_does_not_hide_the_docker_security_errors(repo) -> None:
    svc = (
        "kind: Service\nname: d\ndriver: docker\nimage: foo/bar:1\nport: 8000\nvram_mb: 100\n"
        "privileged: true\nnetwork: host\nvolumes: ['/:/host', '/var/run/docker.sock:/s']\n"
        "env: {'BAD KEY': x, OK: y}\n"
    )
    root = repo(**{"a.yaml": POD + "---\n" + MODE + "---\n" + svc})
    found = problems_of(root)
    assert [p.split(": ", 1)[0] for p in found] == [f"specs/a.yaml:{n}" for n in (17, 18, 19, 19, 20)], found
    assert "(SEC-D7)" in found[0] and "(SEC-D8)" in found[1] and "(SEC-D9)" in found[2] and "(SEC-D9)" in found[3]
    assert found[4] == (
        "specs/a.yaml:20: env.BAD KEY: 'BAD KEY' is not a valid variable name; use letters, digits and '_' "
        "(no digit first)"
    )


def test_a_bad_member_does_not_hide_an_undefined_one_and_lines_stay_right(repo) -> None:
    root = repo(
        **{
            "m.yaml": """
                kind: Mode
                name: m
                services:
                  - {name: d, stat: sleeping}
                  - ghost
                ---
                kind: Service
                name: d
                driver: command
                command: [x]
                port: 8000
                vram_mb: 10
                """,
        }
    )
    assert problems_of(root) == [
        "specs/m.yaml:4: unknown key 'stat'; did you mean 'state'?",
        "specs/m.yaml:5: service 'ghost' is not defined; define a Service named 'ghost' or use one of: d",
    ]


def test_a_misspelt_key_is_unknown_not_missing(repo) -> None:
    # 'drivr' and 'vram_m' are reported once, as unknown keys; not again as "no driver", "no VRAM footprint",
    # but what the document really lacks (a port) and really says (a bad depends_on) still counts
    root = repo(**{"s.yaml": "kind: Service\nname: s\ndrivr: command\ncommand: [x]\nvram_m: 10\ndepends_on: [ghost]\n"})
    assert problems_of(root) == [
        "specs/s.yaml:1: service s has no port; set port: <1-65535>",
        "specs/s.yaml:3: unknown key 'drivr'; did you mean 'driver'?",
        "specs/s.yaml:5: unknown key 'vram_m'; did you mean 'vram_mb'?",
        "specs/s.yaml:6: service s depends on 'ghost', which is not defined; define a Service named 'ghost' "
        "or use one of: s",
    ]


def test_a_wrong_value_is_unknown_for_the_checks_that_read_it(repo) -> None:
    # host and gpus are wrong: no "sim settings apply to host: sim" (host defaulted to local) and no
    # "declares no gpus" (gpus dropped), but the mode is still checked
    root = repo(**{"p.yaml": "kind: Pod\nname: p\nhost: [sim]\nmode: nosuch\ngpus: 2\nsim: {load_s: 1}\n"})
    assert problems_of(root) == [
        "specs/p.yaml:3: host: input should be a valid string, got a list",
        "specs/p.yaml:4: mode 'nosuch' is not defined; define a Mode named 'nosuch'",
        "specs/p.yaml:5: gpus: input should be a valid list, got 2",
    ]


def test_a_sleeping_member_whose_sleep_is_wrong_is_not_called_unable_to_sleep(repo) -> None:
    root = repo(
        **{
            "m.yaml": MODE.replace("[d]", "[{name: d, state: sleeping}]")
            + "---\nkind: Service\nname: d\ndriver: vllm\nmodel: m\nport: 8000\nvram_mb: 10\nsleep: deep\n",
        }
    )
    assert problems_of(root) == ["specs/m.yaml:11: sleep: input should be 'none', 'l1', 'l2' or 'router', got 'deep'"]


def test_an_invalid_document_still_counts_for_duplicate_names(repo) -> None:
    svc = "kind: Service\nname: s\ndriver: command\ncommand: [x]\nport: 8000\nvram_mb: 10\n"
    root = repo(**{"a.yaml": svc, "b.yaml": svc + "xyzzy: 1\n"})
    assert problems_of(root) == [
        "specs/a.yaml:1: duplicate Service 's' (also at specs/b.yaml:1); rename or remove one",
        "specs/b.yaml:1: duplicate Service 's' (also at specs/a.yaml:1); rename or remove one",
        "specs/b.yaml:7: unknown key 'xyzzy'; remove it (`gpumod schema` lists every key)",
    ]


def test_a_document_without_a_valid_name_is_reported_once(repo) -> None:
    root = repo(**{"a.yaml": "kind: Service\nname: Bad Name\nport: x\n"})
    found = problems_of(root)
    assert len(found) == 2 and "not a valid name" in found[0] and "port" in found[1]


def test_a_bad_env_name_does_not_hide_a_plain_text_secret_next_to_it(repo) -> None:
    svc = "kind: Service\nname: s\ndriver: command\ncommand: [x]\nport: 8000\nvram_mb: 10\n"
    svc += "env:\n  '1BAD': x\n  HF_TOKEN: hf_x\n"
    found = problems_of(repo(**{"s.yaml": svc}))
    assert found[0].startswith("specs/s.yaml:8: env.1BAD: '1BAD' is not a valid variable name")
    assert found[1].startswith("specs/s.yaml:9: env HF_TOKEN looks like a secret in plain text")
    assert len(found) == 2
