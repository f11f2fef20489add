"""execve(): binfmt_script and binfmt_elf (fs/exec.c, fs/binfmt_elf.c, fs/binfmt_script.c).

The ELF file is read through the page cache (the header and program headers
as Elf64 structures, checked as load_elf_binary checks them); each PT_LOAD becomes a private file mapping with the
segment's rights, and the part of `.bss` beyond the file's last page an
anonymous area (vm_brk_flags). Nothing else of the file is read until a
fault asks for it. The stack is built as `setup_arg_pages` and
`create_elf_tables` build it: strings at the top (execfn, envp, argv),
then the platform string, 16 random bytes, and 16-byte-aligned argc, argv,
envp and the auxiliary vector. Address-space randomisation follows
x86-64's (stack top, mmap base, ELF_ET_DYN_BASE, brk), driven by the
machine's seed, or is off with `Machine(aslr=False)`.

Errors before the point of no return are -errno (a malformed or foreign
ELF is -ENOEXEC); after it, the task is killed with SIGSEGV, as Linux does.
"""

from __future__ import annotations

import errno as E
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmsim.kernel.uaccess import clear_user, copy_to_user
from vmsim.mm import mman as m
from vmsim.mm.filemap import File, file_read
from vmsim.mm.mmap import do_brk_flags, do_mmap, do_munmap, exit_mmap
from vmsim.mm.vma import VM_EXEC

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
EM_386 = 3
ELFCLASS32 = 1
EHDR_SIZE, PHDR_SIZE = 64, 56  # sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr)
EHDR32_SIZE, PHDR32_SIZE = 52, 32  # sizeof(Elf32_Ehdr), sizeof(Elf32_Phdr)
#: i386 (arch/x86/include/asm/elf.h, CONFIG_X86_32): ELF_ET_DYN_BASE, the platform string.
ELF_ET_DYN_BASE_32 = 0x0040_0000
PLATFORM_32 = b"i686"
BINPRM_BUF_SIZE = 256
MAX_ARG_STRLEN = 32 * 4096
MAX_ARG_STRINGS = 0x7FFF_FFFF
#: ELF_ET_DYN_BASE on x86-64: 2/3 of the 47-bit user space.
ELF_ET_DYN_BASE = (0x7FFF_FFFF_F000 // 3 * 2) & ~0xFFF
STACK_TOP = 0x7FFF_FFFF_F000
STACK_RND_MASK = 0x3F_FFFF  # pages
MMAP_RND_BITS = 28
STACK_EXPAND = 128 * 1024
PLATFORM = b"x86_64"
#: CPUID.1:EDX of a QEMU "qemu64" CPU, which Unicorn emulates (the AT_HWCAP x86 reports).
HWCAP = 0x078BFBFF
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51


@dataclass
class Phdr:
    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_filesz: int
    p_memsz: int
    p_align: int


@dataclass
class ElfImage:
    """What the loader needs of one ELF file: type, entry, program headers."""

    file: File
    e_type: int
    e_entry: int
    e_phoff: int
    e_phnum: int
    phdrs: list[Phdr]
    interp: str | None
    exec_stack: bool


def _phdr(raw: bytes, offset: int) -> Phdr:
    p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = struct.unpack_from(
        "<IIQQQQQQ", raw, offset)
    return Phdr(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align)


def _phdr32(raw: bytes, offset: int) -> Phdr:
    p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, p_align = struct.unpack_from(
        "<8I", raw, offset)
    return Phdr(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align)


def is_32bit(task: Process) -> bool:
    """Whether the machine is an i386 one (4-byte words: ELFCLASS32 programs, the i386 ABI)."""
    return task.machine.layout.word == 4


def read_elf(task: Process, file: File) -> ElfImage | int:
    """The checks of load_elf_binary() and load_elf_phdrs(): the ELF magic, ET_EXEC or
    ET_DYN, elf_check_arch() (EM_X86_64), program headers of the native size filling at
    most one page; -ENOEXEC otherwise. The header is read as Elf64 whatever its e_ident
    class and byte-order bytes say: Linux does not look at them either."""
    kmem = task.machine.kmem
    elf32 = is_32bit(task)
    ehdr_size, phdr_size = (EHDR32_SIZE, PHDR32_SIZE) if elf32 else (EHDR_SIZE, PHDR_SIZE)
    head = file_read(kmem, file.inode, 0, ehdr_size)
    if len(head) < ehdr_size or head[:4] != b"\x7fELF":
        return -E.ENOEXEC
    if elf32:  # an i386 kernel: elf_check_arch() is EM_386 and ELFCLASS32 (Elf32 headers)
        (e_type, e_machine, _version, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
         e_phnum) = struct.unpack_from("<HHIIIIIHHH", head, 16)
        if head[4] != ELFCLASS32 or e_machine != EM_386 or e_type not in (ET_EXEC, ET_DYN):
            return -E.ENOEXEC
    else:
        (e_type, e_machine, _version, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
         e_phnum) = struct.unpack_from("<HHIQQQIHHH", head, 16)
        if e_type not in (ET_EXEC, ET_DYN) or e_machine != EM_X86_64:
            return -E.ENOEXEC
    size = e_phnum * phdr_size
    if e_phentsize != phdr_size or size == 0 or size > 4096:
        return -E.ENOEXEC
    raw = file_read(kmem, file.inode, e_phoff, size)
    if len(raw) != size:  # load_elf_phdrs() fails, and load_elf_binary() says -ENOEXEC
        return -E.ENOEXEC
    parse = _phdr32 if elf32 else _phdr
    phdrs = [parse(raw, i * phdr_size) for i in range(e_phnum)]
    interp = None
    exec_stack = False
    for phdr in phdrs:
        if phdr.p_type == PT_INTERP:
            if interp is not None or not 2 <= phdr.p_filesz <= 4096:
                return -E.ENOEXEC
            name = file_read(kmem, file.inode, phdr.p_offset, phdr.p_filesz)
            if len(name) != phdr.p_filesz:
                return -E.EIO
            if name[-1:] != b"\0":
                return -E.ENOEXEC
            interp = name[:-1].decode("utf-8", "surrogateescape")
        elif phdr.p_type == PT_GNU_STACK:
            exec_stack = bool(phdr.p_flags & PF_X)
    loads = [p for p in phdrs if p.p_type == PT_LOAD]
    if not loads:
        return -E.ENOEXEC
    for p in loads:
        if p.p_filesz > p.p_memsz or (p.p_vaddr - p.p_offset) % 4096:
            return -E.ENOEXEC
    return ElfImage(file, e_type, e_entry, e_phoff, e_phnum, phdrs, interp, exec_stack)


def _open_exec(task: Process, path: str) -> File | int:
    """open_exec(): a regular file with execute permission."""
    name = task.resolve_path(-100, path)
    if isinstance(name, int):
        return name
    f = task.machine.vfs.open(name, 0)
    if isinstance(f, int):
        return f
    mode = f.inode.i_mode
    if (mode & 0o170000) != 0o100000 or not mode & 0o111:
        return -E.EACCES
    return f


def _prot(flags: int) -> int:
    return (m.PROT_READ if flags & PF_R else 0) | (m.PROT_WRITE if flags & PF_W else 0) | (
        m.PROT_EXEC if flags & PF_X else 0)


def _rnd_pages(task: Process, bits_mask: int) -> int:
    return (task.machine.rng.getrandbits(32) & bits_mask) << 12 if task.machine.aslr else 0


def load_elf_segments(task: Process, img: ElfImage, load_bias: int, fixed: bool) -> tuple[int, int] | int:
    """elf_load() for every PT_LOAD: map file pages, zero the tail of the last one, map the
    rest of .bss anonymously. Returns (load_bias, elf_brk) or -errno.

    With `fixed` False, the first segment's address is chosen by mmap (a position-
    independent image), reserving the whole image's span first (total_mapping_size)."""
    mm = task.mm
    loads = [p for p in img.phdrs if p.p_type == PT_LOAD]
    first = True
    elf_brk = 0
    for p in loads:
        prot = _prot(p.p_flags)
        flags = m.MAP_PRIVATE | (m.MAP_FIXED if fixed or not first else 0)
        addr = (load_bias + p.p_vaddr) & ~0xFFF
        page_off = p.p_vaddr & 0xFFF
        if first and not fixed:
            span = ((loads[-1].p_vaddr + loads[-1].p_memsz + 0xFFF) & ~0xFFF) - (p.p_vaddr & ~0xFFF)
            got, _ = do_mmap(mm, img.file, 0, span, prot, m.MAP_PRIVATE,
                             (p.p_offset - page_off) >> 12)
            if got < 0:
                return got
            load_bias = got - (p.p_vaddr & ~0xFFF)
            do_munmap(mm, got + ((p.p_filesz + page_off + 0xFFF) & ~0xFFF),
                      span - ((p.p_filesz + page_off + 0xFFF) & ~0xFFF))
            addr = got
            if not p.p_filesz:
                do_munmap(mm, got, span)
        elif p.p_filesz:
            got, _ = do_mmap(mm, img.file, addr, p.p_filesz + page_off, prot, flags,
                             (p.p_offset - page_off) >> 12)
            if got < 0:
                return got
        first = False
        zero_start = addr + page_off + p.p_filesz
        zero_end = addr + page_off + p.p_memsz
        if p.p_memsz > p.p_filesz:
            if p.p_filesz and zero_start & 0xFFF:
                ok = clear_user(task, zero_start, 0x1000 - (zero_start & 0xFFF))  # padzero()
                if not ok and prot & m.PROT_WRITE:
                    return -E.EFAULT
            start = (zero_start + 0xFFF) & ~0xFFF
            end = (zero_end + 0xFFF) & ~0xFFF
            if end > start:
                do_munmap(mm, start, end - start)
                err = do_brk_flags(mm, start, end - start, VM_EXEC if prot & m.PROT_EXEC else 0)
                if err < 0:
                    return err
        elf_brk = max(elf_brk, load_bias + p.p_vaddr + p.p_memsz)
    return load_bias, elf_brk


def _phdr_addr(img: ElfImage, load_bias: int) -> int:
    """Where the program headers are in memory (the PT_LOAD that contains e_phoff)."""
    for p in img.phdrs:
        if p.p_type == PT_LOAD and p.p_offset <= img.e_phoff < p.p_offset + p.p_filesz:
            return img.e_phoff - p.p_offset + p.p_vaddr + load_bias
    return 0


def do_execve(task: Process, filename: str, argv: list[bytes], envp: list[bytes],
              depth: int = 0) -> int:
    """execve(2): 0 after replacing the task's image (it starts at the new entry point when it
    next runs), or -errno with the old image untouched. An empty argv gets one empty string,
    so argc is 1 (do_execveat_common(), Linux 5.18+), with the kernel's one-time warning."""
    if depth > 4:
        return -E.ELOOP
    f = _open_exec(task, filename)
    if isinstance(f, int):
        return f
    if not argv:
        machine = task.machine
        if not getattr(machine, "warned_null_argv", False):
            machine.warned_null_argv = True  # type: ignore[attr-defined]
            machine.kernel_log.append(f"process '{task.comm}' launched "
                                      f"'{filename}' with NULL argv: empty string added")
        argv = [b""]
    head = file_read(task.machine.kmem, f.inode, 0, BINPRM_BUF_SIZE)
    if head[:2] == b"#!":
        return _exec_script(task, filename, head, argv, envp, depth)
    img = read_elf(task, f)
    if isinstance(img, int):
        return img
    interp_img = None
    if img.interp is not None:
        fi = _open_exec(task, img.interp)
        if isinstance(fi, int):
            return fi
        interp_img = read_elf(task, fi)
        if isinstance(interp_img, int):
            return -E.ELIBBAD if interp_img == -E.ENOEXEC else interp_img
    if sum(len(s) + 1 for s in argv + envp) > task.mm.rlimits.stack // 4:
        return -E.E2BIG
    if any(len(s) + 1 > MAX_ARG_STRLEN for s in argv + envp):
        return -E.E2BIG
    # ---- point of no return: flush_old_exec() --------------------------------------------
    begin_new_exec(task, filename)
    err = _load(task, filename, img, interp_img, argv, envp)
    if err < 0:
        from vmsim.kernel.signal import SIGSEGV, force_sig_fault

        task.log.append(f"execve: {filename}: image setup failed ({err}), killed")
        force_sig_fault(task, SIGSEGV, 0x80, 0)
    return 0


def _exec_script(task: Process, filename: str, head: bytes, argv: list[bytes],
                 envp: list[bytes], depth: int) -> int:
    """binfmt_script: "#!interpreter [one-argument]"."""
    line = head[2:].split(b"\n", 1)
    if len(line) == 1 and len(head) == BINPRM_BUF_SIZE:
        return -E.ENOEXEC  # the interpreter line does not fit the buffer
    text = line[0].strip(b" \t")
    if not text:
        return -E.ENOEXEC
    parts = text.split(None, 1)
    interp = parts[0]
    new_argv = [interp] + ([parts[1].strip(b" \t")] if len(parts) > 1 else []) + [
        filename.encode("utf-8", "surrogateescape")] + argv[1:]
    return do_execve(task, interp.decode("utf-8", "surrogateescape"), new_argv, envp, depth + 1)


def begin_new_exec(task: Process, filename: str) -> None:
    """begin_new_exec(): a new, empty mm; close-on-exec files; default signal actions;
    the name; release a vfork parent."""
    machine = task.machine
    task.account_mm()
    old = task.mm
    task.mm = machine.mm_alloc()
    task.mm.rlimits = old.rlimits  # resource limits and capabilities survive exec
    machine.attach_mm(task)
    old.mm_users -= 1
    if old.mm_users == 0:
        exit_mmap(old)
    for fd in sorted(task.cloexec):
        from vmsim.kernel.sys_fs import close_fd

        close_fd(task, fd)
    task.signal.reset_for_exec()
    task.comm = filename.rsplit("/", 1)[-1][:15]
    task.exe = filename
    machine.sched.vfork_done(task)
    if machine.cpu is not None:
        machine.cpu.flush_icache()


def _load(task: Process, filename: str, img: ElfImage, interp: ElfImage | None,
          argv: list[bytes], envp: list[bytes]) -> int:
    mm = task.mm
    aslr = task.machine.aslr
    if img.e_type == ET_EXEC:
        load_bias, fixed = 0, True
    elif interp is not None:
        if is_32bit(task):
            load_bias = (ELF_ET_DYN_BASE_32 + _rnd_pages(
                task, (1 << task.machine.layout.mmap_rnd_bits) - 1)) & ~0xFFF
        else:
            load_bias = (ELF_ET_DYN_BASE + _rnd_pages(task, (1 << MMAP_RND_BITS) - 1)) & ~0xFFF
        load_bias -= min(p.p_vaddr for p in img.phdrs if p.p_type == PT_LOAD) & ~0xFFF
        fixed = True
    else:
        load_bias, fixed = 0, False
    got = load_elf_segments(task, img, load_bias, fixed)
    if isinstance(got, int):
        return got
    load_bias, elf_brk = got
    loads = [p for p in img.phdrs if p.p_type == PT_LOAD]
    code = [p for p in loads if p.p_flags & PF_X]
    mm.start_code = min((p.p_vaddr for p in code), default=0) + load_bias
    mm.end_code = max((p.p_vaddr + p.p_filesz for p in code), default=0) + load_bias
    mm.start_data = max(p.p_vaddr for p in loads) + load_bias
    mm.end_data = max(p.p_vaddr + p.p_filesz for p in loads) + load_bias
    entry = img.e_entry + load_bias
    interp_base = 0
    start_ip = entry
    if interp is not None:
        got_i = load_elf_segments(task, interp, 0, interp.e_type == ET_EXEC)
        if isinstance(got_i, int):
            return got_i
        interp_base = got_i[0]
        start_ip = interp.e_entry + interp_base
    brk = (elf_brk + 0xFFF) & ~0xFFF
    if aslr:
        if img.e_type == ET_DYN and interp is None:
            brk = ELF_ET_DYN_BASE_32 if is_32bit(task) else ELF_ET_DYN_BASE
        else:
            brk += 0x1000  # leave a gap between .bss and brk
        brk += _rnd_pages(task, (0x0200_0000 >> 12) - 1)  # arch_randomize_brk(): 32 MiB
    mm.start_brk = mm.brk = brk
    sp = setup_stack(task, filename, img, load_bias, interp_base, entry, argv, envp)
    if sp < 0:
        return sp
    task.machine.cpu_start_thread(task, start_ip, sp)
    return 0


def setup_stack(task: Process, filename: str, img: ElfImage, load_bias: int, interp_base: int,
                entry: int, argv: list[bytes], envp: list[bytes]) -> int:
    """setup_arg_pages() + create_elf_tables(): the initial stack; returns the new rsp."""
    mm = task.mm
    elf32 = is_32bit(task)
    layout = task.machine.layout
    if elf32:  # i386: STACK_TOP is TASK_SIZE, 4-byte words, "i686", 32-byte Elf32_Phdr
        top = layout.stack_top - _rnd_pages(task, layout.stack_rnd_mask)
        word, platform, phent = 4, PLATFORM_32, PHDR32_SIZE
    else:
        top = STACK_TOP - _rnd_pages(task, STACK_RND_MASK)
        word, platform, phent = 8, PLATFORM, PHDR_SIZE
    execfn = filename.encode("utf-8", "surrogateescape") + b"\0"
    strings = b"".join(s + b"\0" for s in argv) + b"".join(s + b"\0" for s in envp) + execfn
    p = top - 8 - len(strings)
    if task.machine.aslr:
        shift = task.machine.rng.randrange(8192) & ~0xF  # arch_align_stack() on stack_top
        top_aligned = (top - shift) & ~0xF
        top_aligned = (top_aligned + 0xFFF) & ~0xFFF
    else:
        top_aligned = top
    p = top_aligned - 8 - len(strings)
    stack_size = top_aligned - (p & ~0xFFF)
    expand = min(mm.rlimits.stack & ~0xFFF, stack_size + STACK_EXPAND)
    base = top_aligned - expand
    got, _ = do_mmap(mm, None, base, expand, m.PROT_READ | m.PROT_WRITE | (
        m.PROT_EXEC if img.exec_stack else 0),
        m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_FIXED | m.MAP_GROWSDOWN, 0)
    if got < 0:
        return got
    mm.arg_start = p
    mm.start_stack = p
    if not copy_to_user(task, p, strings):
        return -E.EFAULT
    argv_ptrs, pos = [], p
    for s in argv:
        argv_ptrs.append(pos)
        pos += len(s) + 1
    mm.arg_end = mm.env_start = pos
    env_ptrs = []
    for s in envp:
        env_ptrs.append(pos)
        pos += len(s) + 1
    mm.env_end = pos
    execfn_addr = pos
    # create_elf_tables()
    sp = p
    if task.machine.aslr:
        sp -= task.machine.rng.randrange(8192)
    sp &= ~0xF
    sp -= len(platform) + 1
    u_platform = sp
    sp -= 16
    u_random = sp
    rand = bytes(task.machine.rng.getrandbits(8) for _ in range(16))
    if not copy_to_user(task, u_platform, platform + b"\0") or not copy_to_user(task, u_random, rand):
        return -E.EFAULT
    auxv = [(AT_MINSIGSTKSZ, 2048), (AT_HWCAP, HWCAP), (AT_PAGESZ, 4096), (AT_CLKTCK, 100),
            (AT_PHDR, _phdr_addr(img, load_bias)), (AT_PHENT, phent), (AT_PHNUM, img.e_phnum),
            (AT_BASE, interp_base), (AT_FLAGS, 0), (AT_ENTRY, entry),
            (AT_UID, task.cred_uid), (AT_EUID, task.cred_uid), (AT_GID, task.cred_gid),
            (AT_EGID, task.cred_gid), (AT_SECURE, 0), (AT_RANDOM, u_random), (AT_HWCAP2, 0),
            (AT_EXECFN, execfn_addr), (AT_PLATFORM, u_platform), (AT_NULL, 0)]
    words = [len(argv), *argv_ptrs, 0, *env_ptrs, 0]
    for key, value in auxv:
        words += [key, value]
    ei = 2 * len(auxv)
    items = len(argv) + 1 + len(envp) + 1 + 1
    sp = (sp - word * ei - word * items) & ~0xF
    if not copy_to_user(task, sp, struct.pack(f"<{len(words)}{'I' if elf32 else 'Q'}", *words)):
        return -E.EFAULT
    return sp
