"""The sandbox: a guest sees only its root, whatever its paths and symlinks say.

Adversarial trees (symlinks to /etc/passwd and to host paths outside the
root, `..` chains, symlink loops and chains, a directory swapped for a
symlink in the middle of a walk) are tried through the VFS directly and by
a guest program, which must behave exactly as the same program in a chroot
of the same tree; nothing outside the root may change.
"""

from __future__ import annotations

import errno as E
import os
from pathlib import Path

import pytest

from tests.kernel.fsprog import both
from vmsim import Machine
from vmsim.fs import vfs as vfs_mod
from vmsim.fs.vfs import O_CREAT, O_RDONLY, O_RDWR, O_WRONLY, Vfs


def snapshot(top: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every name under `top` with its mode, mtime and content (or link body)."""
    out: dict[str, tuple[int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body: bytes | str = (os.readlink(p) if p.is_symlink() else
                                 p.read_bytes() if p.is_file() else b"")
            out[str(p.relative_to(top))] = (st.st_mode, st.st_mtime_ns, body)
    return out


def make_tree(root: Path, outside: Path) -> None:
    """A root full of ways out; `outside` is a host directory beside it."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("guest-passwd\n")
    (root / "d").mkdir()
    (root / "d" / "f").write_text("inside\n")
    links = {
        "passwd_abs": "/etc/passwd",
        "escape_rel": "../outside/secret",
        "escape_deep": "../../../../../../../../../../" + str(outside).lstrip("/") + "/secret",
        "escape_abs": str(outside / "secret"),
        "escape_dir": str(outside),
        "escape_dir_rel": "../outside",
        "root_dotdot": "../../../../..",
        "host_etc": "/etc",
        "loop_a": "loop_b",
        "loop_b": "loop_a",
        "self": "self",
        "d/up": "../../../..",
    }
    for name, body in links.items():
        os.symlink(body, root / name)
    for i in range(41):  # chain_0 -> chain_1 -> ... -> chain_40 -> d/f
        os.symlink(f"chain_{i + 1}" if i < 40 else "d/f", root / f"chain_{i}")
    os.symlink("d/f", root / "chain_41")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Vfs, Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("SECRET\n")
    (outside / "dir").mkdir()
    root = tmp_path / "root"
    root.mkdir()
    make_tree(root, outside)
    m = Machine(memory="16M", root=root)
    return m.vfs, root, outside


def read_all(vfs: Vfs, path: str) -> bytes | int:
    f = vfs.open(path, O_RDONLY)
    if isinstance(f, int):
        return f
    assert f.inode.backing is not None
    return f.inode.backing.pread(0, 100)


def test_absolute_symlinks_resolve_inside_the_root(tree: tuple[Vfs, Path, Path]) -> None:
    vfs, root, _ = tree
    assert read_all(vfs, "/passwd_abs") == b"guest-passwd\n"
    assert read_all(vfs, "/host_etc/passwd") == b"guest-passwd\n"
    assert vfs.canonical("/passwd_abs") == "/etc/passwd"
    assert vfs.resolve("/passwd_abs") == root / "etc" / "passwd"


def test_nothing_outside_is_reachable(tree: tuple[Vfs, Path, Path]) -> None:
    vfs, root, outside = tree
    before = snapshot(outside)
    for p in ("/escape_rel", "/escape_deep", "/escape_abs", "/escape_dir/secret",
              "/escape_dir_rel/secret", "/../outside/secret", "/../../../outside/secret",
              "/d/up/outside/secret", "/root_dotdot/outside/secret",
              "/d/../../outside/secret" + "/", "/" + str(outside / "secret")):
        assert read_all(vfs, p) in (-E.ENOENT, -E.ENOTDIR), p
        assert vfs.stat(p) in (-E.ENOENT, -E.ENOTDIR), p
        assert vfs.access(p, 0) in (-E.ENOENT, -E.ENOTDIR), p
        assert vfs.open(p, O_RDWR | O_CREAT, 0o644) in (-E.ENOENT, -E.ENOTDIR, -E.EISDIR), p
        assert vfs.chmod(p, 0o777) in (-E.ENOENT, -E.ENOTDIR), p
        assert vfs.truncate(p, 0) in (-E.ENOENT, -E.ENOTDIR), p
    for p in ("/escape_dir/new", "/escape_dir_rel/new", "/d/up/outside/new"):
        assert vfs.mkdir(p, 0o755) == -E.ENOENT
        assert vfs.symlink("x", p) == -E.ENOENT
        assert vfs.rename("/d/f", p) == -E.ENOENT
        assert vfs.link("/d/f", p) == -E.ENOENT
        assert vfs.unlink(p) == -E.ENOENT
        assert vfs.rmdir(p.replace("new", "dir")) == -E.ENOENT
    # .. never climbs above the root: these all name the root itself
    for p in ("/..", "/../..", "/d/../../..", "/root_dotdot", "/d/up", "/d/up/../.."):
        assert vfs.canonical(p) == "/", p
        got = vfs.open(p, O_RDONLY)
        assert not isinstance(got, int) and got.path == "/"
        names = vfs.readdir(got)  # type: ignore[arg-type]
        assert not isinstance(names, int) and b"etc" in [n for n, _, _ in names]
    # creating through a dangling symlink creates its target inside the root
    assert vfs.open("/escape_abs", O_WRONLY | O_CREAT, 0o600) == -E.ENOENT  # no such parent
    os.symlink("/made", root / "mk")
    assert not isinstance(vfs.open("/mk", O_WRONLY | O_CREAT, 0o600), int)
    assert (root / "made").is_file()
    assert snapshot(outside) == before


def test_symlink_loops_and_chains(tree: tuple[Vfs, Path, Path]) -> None:
    vfs, _, _ = tree
    for p in ("/loop_a", "/loop_b/x", "/self", "/chain_0"):
        assert vfs.stat(p) == -E.ELOOP, p
        assert vfs.open(p, O_RDONLY) == -E.ELOOP, p
    assert read_all(vfs, "/chain_1") == b"inside\n"  # exactly 40 links is allowed
    assert vfs.stat("/loop_a", follow=False) not in (-E.ELOOP,)
    assert vfs.readlink("/loop_a") == b"loop_b"
    assert vfs.mkdir("/loop_a", 0o755) == -E.EEXIST
    assert vfs.unlink("/self") == 0


def test_directory_swapped_for_a_symlink_mid_walk(tree: tuple[Vfs, Path, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk holds a descriptor for each directory it entered: replacing "d" by a symlink
    to a host directory after the walk stepped into it changes nothing outside."""
    vfs, root, outside = tree
    before = snapshot(outside)
    real = Vfs._lookup_one
    swapped = []

    def racing(self: Vfs, nd: vfs_mod.Nameidata, name: str, follow: bool,
               dir_likely: bool = False) -> int | str:
        got = real(self, nd, name, follow, dir_likely)
        if name == "d" and not swapped:
            os.rename(root / "d", root / "d_old")
            os.symlink(str(outside), root / "d")
            swapped.append(True)
        return got

    monkeypatch.setattr(Vfs, "_lookup_one", racing)
    assert read_all(vfs, "/d/f") == b"inside\n"  # the directory it entered, now d_old
    assert read_all(vfs, "/d/secret") == -E.ENOENT  # a new walk: /d -> <outside> in the root
    assert vfs.mkdir("/d/dir/x", 0o755) == -E.ENOENT
    assert snapshot(outside) == before


def test_leaf_swapped_for_a_symlink_before_open(tree: tuple[Vfs, Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that becomes a symlink between the lookup and the open is refused (O_NOFOLLOW
    on the host), never followed to the host's target."""
    vfs, root, outside = tree
    before = snapshot(outside)

    class RacingOs:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def stat(path: str, **kw: object) -> os.stat_result:
            st = os.stat(path, **kw)  # type: ignore[arg-type]
            if path == "f":
                os.unlink(root / "d" / "f")
                os.symlink(str(outside / "secret"), root / "d" / "f")
            return st

    monkeypatch.setattr(vfs_mod, "os", RacingOs())
    assert vfs.open("/d/f", O_RDWR) == -E.ELOOP
    monkeypatch.undo()
    assert snapshot(outside) == before


def test_no_root_means_no_files(tmp_path: Path) -> None:
    m = Machine(memory="16M")
    assert m.vfs.open("/x", O_RDONLY) == -E.ENOENT
    assert m.vfs.stat("/") == -E.ENOENT


def test_read_only_root(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    vfs = Machine(memory="16M", root=tmp_path).vfs
    vfs.read_only = True
    assert vfs.open("/f", O_RDWR) == -E.EROFS
    assert vfs.open("/new", O_WRONLY | O_CREAT) == -E.EROFS
    assert not isinstance(vfs.open("/f", O_RDONLY), int)
    assert vfs.mkdir("/x", 0o755) == -E.EROFS
    assert vfs.mkdir("/f", 0o755) == -E.EEXIST
    assert vfs.symlink("t", "/f") == -E.EEXIST
    assert vfs.unlink("/f") == -E.EROFS
    assert vfs.rename("/f", "/g") == -E.EROFS
    assert vfs.chmod("/f", 0o600) == -E.EROFS
    assert (tmp_path / "f").read_text() == "x"


ESCAPES = r"""
static void cat(const char *p) {
    char buf[64] = {0};
    int fd = open(p, O_RDONLY);
    if (fd < 0) { printf("%s: errno=%d\n", p, errno); return; }
    long n = read(fd, buf, sizeof buf - 1);
    printf("%s: %ld %s", p, n, n > 0 ? buf : "\n");
    close(fd);
}
int main(int argc, char **argv) {
    const char *outside = argv[1];
    char p[512];
    cat("/passwd_abs"); cat("/host_etc/passwd"); cat("/escape_rel"); cat("/escape_deep");
    cat("/escape_abs"); cat("/escape_dir/secret"); cat("/escape_dir_rel/secret");
    cat("/../outside/secret"); cat("/d/up/outside/secret"); cat("/root_dotdot/etc/passwd");
    cat("/loop_a"); cat("/self"); cat("/chain_0"); cat("/chain_1"); cat("/chain_41");
    snprintf(p, sizeof p, "%s/secret", outside); cat(p);
    snprintf(p, sizeof p, "/../../../../..%s/secret", outside); cat(p);
    R(chdir("/d/up")); char cwd[256]; R(getcwd(cwd, sizeof cwd) != 0); printf("cwd=%s\n", cwd);
    R(chdir("../../..")); R(getcwd(cwd, sizeof cwd) != 0); printf("cwd=%s\n", cwd);
    R(mkdir("/escape_dir/new", 0755));
    R(mkdir("/escape_dir_rel/new", 0755));
    R(symlink("/etc/passwd", "/newlink")); cat("/newlink");
    R(rename("/d/f", "/escape_dir/stolen"));
    R(unlink("/escape_abs/x"));
    R(open("/escape_abs", O_WRONLY | O_CREAT, 0600));
    R(truncate("/escape_abs", 0));
    R(chmod("/escape_dir", 0700));
    struct stat st;
    R(stat("/escape_dir", &st));
    R(lstat("/escape_dir", &st));
    R(access("/escape_rel", F_OK));
    char buf[256];
    long n = readlink("/escape_abs", buf, sizeof buf);
    printf("readlink=%ld same=%d\n", n, n > 0 && strncmp(buf, outside, strlen(outside)) == 0);
    return 0;
}
"""


def test_guest_escapes_behave_as_in_a_chroot(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("SECRET\n")
    before = snapshot(outside)
    native, vm, _ = both(tmp_path, ESCAPES, "fs_escapes", lambda r: make_tree(r, outside),
                         args=(str(outside),))
    assert vm == native
    assert "SECRET" not in vm
    assert "guest-passwd" in vm
    assert snapshot(outside) == before


def test_no_setuid_files_on_the_host(tmp_path: Path) -> None:
    """A guest's chmod u+s / g+s, or a creation mode with them, never reaches the host file."""
    (tmp_path / "d").mkdir()
    vfs = Machine(memory="16M", root=tmp_path).vfs
    assert not isinstance(vfs.open("/f", O_WRONLY | O_CREAT, 0o6755), int)
    assert (tmp_path / "f").stat().st_mode & 0o7777 == 0o755
    assert vfs.chmod("/f", 0o4711) == 0
    assert (tmp_path / "f").stat().st_mode & 0o7777 == 0o711
    assert vfs.chmod("/d", 0o3775) == 0  # setgid and sticky directories are fine
    assert (tmp_path / "d").stat().st_mode & 0o7777 == 0o3775
