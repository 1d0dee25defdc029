"""veclut.cpus: the default thread count from the affinity mask and the cgroup CPU quota, with
fake cgroup trees under tmp_path and a fake affinity mask."""

import pytest

from veclut import cpus


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake machine of 8 CPUs: call it with /proc/self/cgroup's text, then write quota files."""
    v2, v1 = tmp_path / "cgroup", tmp_path / "cgroup-cpu"
    monkeypatch.setattr(cpus, "HIERARCHIES", {
        "v2": (cpus.HIERARCHIES["v2"][0], v2, cpus.HIERARCHIES["v2"][2]),
        "v1": (cpus.HIERARCHIES["v1"][0], v1, cpus.HIERARCHIES["v1"][2]),
    })
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(cpus, "PROC_CGROUP", tmp_path / "proc-self-cgroup")

    def make(proc_cgroup: str):
        cpus.PROC_CGROUP.write_text(proc_cgroup)
        return v2, v1

    return make


def _write(folder, cpu_max: str | None = None, v1: tuple[str, str] | None = None):
    """cpu_max: cgroup v2's file; v1: (cpu.cfs_quota_us, cpu.cfs_period_us)."""
    folder.mkdir(parents=True, exist_ok=True)
    if cpu_max is not None:
        (folder / "cpu.max").write_text(cpu_max + "\n")
    if v1 is not None:
        (folder / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (folder / "cpu.cfs_period_us").write_text(v1[1] + "\n")


def test_no_quota_means_the_affinity_mask(machine):
    v2, _ = machine("0::/\n")
    _write(v2, cpu_max="max 100000")
    assert cpus.quota_cpus() is None
    assert cpus.usable_cpus() == 8


@pytest.mark.parametrize("cpu_max, expected", [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1),
                                               ("1600000 100000", 8)])
def test_cgroup_v2_quota_rounds_up_and_never_exceeds_the_mask(machine, cpu_max, expected):
    v2, _ = machine("0::/\n")
    _write(v2, cpu_max=cpu_max)
    assert cpus.usable_cpus() == expected


def test_cgroup_v2_takes_the_tightest_quota_on_the_way_to_the_root(machine):
    v2, _ = machine("0::/system.slice/job.scope\n")
    _write(v2 / "system.slice", cpu_max="300000 100000")
    _write(v2 / "system.slice/job.scope", cpu_max="max 100000")
    assert cpus.quota_cpus() == 3
    assert cpus.usable_cpus() == 3


def test_a_host_path_absent_in_the_container_falls_back_to_the_mount(machine):
    v2, _ = machine("0::/kubepods/pod1/abc\n")  # the host's path; the container mounts its own cgroup
    _write(v2, cpu_max="250000 100000")
    assert cpus.usable_cpus() == 3


def test_cgroup_v1_quota(machine):
    _, v1 = machine("4:memory:/\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(v1 / "docker/abc", v1=("100000", "50000"))
    assert cpus.usable_cpus() == 2


def test_cgroup_v1_without_quota(machine):
    _, v1 = machine("3:cpu,cpuacct:/\n")
    _write(v1, v1=("-1", "100000"))
    assert cpus.usable_cpus() == 8


def test_a_narrow_affinity_mask_wins_over_a_wide_quota(machine, monkeypatch):
    v2, _ = machine("0::/\n")
    _write(v2, cpu_max="400000 100000")
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert cpus.usable_cpus() == 1


@pytest.mark.parametrize("proc_cgroup, cpu_max", [("", None), ("garbage\n", None), ("0::/\n", "nonsense"),
                                                  ("0::/\n", "0 0 0"), ("0::/\n", "max")])
def test_unreadable_or_odd_cgroup_files_are_ignored(machine, proc_cgroup, cpu_max):
    v2, _ = machine(proc_cgroup)
    if cpu_max is not None:
        _write(v2, cpu_max=cpu_max)
    assert cpus.usable_cpus() == 8


def test_no_proc_file_at_all(machine):
    cpus.PROC_CGROUP.unlink(missing_ok=True)
    assert cpus.usable_cpus() == 8


def test_zero_cpus_in_the_mask_still_gives_one(machine, monkeypatch):
    machine("0::/\n")
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(), raising=False)
    assert cpus.usable_cpus() == 1


def test_serve_and_generate_default_to_the_usable_cpus(monkeypatch):
    from veclut import serve

    monkeypatch.setattr(serve, "usable_cpus", lambda: 3)
    assert serve.thread_count(None) == 3
    assert serve.thread_count(5) == 5
