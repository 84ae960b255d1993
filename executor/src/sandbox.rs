//! Confinement of one child process between `fork` and `exec`: resource
//! limits, the switch to another account, dropping every capability,
//! `no_new_privs`, and a Landlock domain that allows no file system writes.
//!
//! This is the workspace's one hand-written `unsafe` module. What runs in
//! the child of a multi-threaded parent (the agent) must be
//! async-signal-safe, so everything is prepared in the parent and the child
//! only makes raw system calls on plain integers: no allocation, no locks.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use serde::Deserialize;

/// Per-command resource limits (rlimits; for approved commands also the
/// transient unit's `MemoryMax`/`TasksMax`). Zero means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Address space per process (`RLIMIT_AS`), MiB.
    pub memory_mb: u64,
    /// CPU time per process (`RLIMIT_CPU`), seconds.
    pub cpu_secs: u64,
    /// Processes of the command account at once (`RLIMIT_NPROC`); for
    /// approved commands the transient unit's `TasksMax`.
    pub processes: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`), MiB.
    pub file_size_mb: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_mb: 1024,
            cpu_secs: 60,
            processes: 256,
            file_size_mb: 1024,
            open_files: 1024,
        }
    }
}

impl Limits {
    /// The limits as `(resource, value)` pairs, ready for `setrlimit`:
    /// only the configured ones, each at most the current hard limit (an
    /// unprivileged process cannot raise it). Resource `u32::MAX` = skip.
    fn rlimits(&self, with_nproc: bool) -> [(u32, u64); 5] {
        let mib = |v: u64| v.saturating_mul(1024 * 1024);
        let nproc = if with_nproc { self.processes } else { 0 };
        let want = [
            (libc::RLIMIT_AS, mib(self.memory_mb)),
            (libc::RLIMIT_CPU, self.cpu_secs),
            (libc::RLIMIT_NPROC, nproc),
            (libc::RLIMIT_FSIZE, mib(self.file_size_mb)),
            (libc::RLIMIT_NOFILE, self.open_files),
        ];
        want.map(|(res, v)| {
            if v == 0 {
                return (u32::MAX, 0);
            }
            let hard = get_rlimit(res).map_or(libc::RLIM_INFINITY, |l| l.rlim_max);
            (res, v.min(hard))
        })
    }

    /// Sets the limits on the calling process (inherited by its children).
    pub fn apply_to_self(&self) -> io::Result<()> {
        for (res, v) in self.rlimits(false) {
            if res != u32::MAX {
                set_rlimit(res, v)?;
            }
        }
        Ok(())
    }
}

fn get_rlimit(res: u32) -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one plain struct we own.
    (unsafe { libc::getrlimit(res, &mut lim) } == 0).then_some(lim)
}

fn set_rlimit(res: u32, v: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: v,
        rlim_max: v,
    };
    // SAFETY: setrlimit reads one plain struct we own; no memory is retained.
    if unsafe { libc::setrlimit(res, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The Landlock ABI the running kernel offers, 0 when it has none (not
/// built in, or not enabled at boot).
pub fn landlock_abi() -> i32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0
    // only returns a number; nothing is read or written.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// A Landlock ruleset that handles every write access right the kernel
/// knows and grants none, except writing to `/dev/null` and (for
/// privileged reads) appending to existing files beneath the given
/// directories. Reads are not handled, so they stay allowed. With ABI 6 or
/// later it also scopes signals and abstract UNIX sockets to the sandbox.
#[derive(Debug)]
pub struct ReadOnly {
    fd: OwnedFd,
    abi: i32,
}

impl ReadOnly {
    /// Builds the ruleset for the kernel's ABI; `None` without Landlock.
    pub fn new(write_existing_beneath: &[&Path]) -> Result<Option<ReadOnly>, String> {
        let abi_num = landlock_abi();
        if abi_num == 0 {
            return Ok(None);
        }
        let abi = ABI::from(abi_num);
        let err = |e: &dyn std::fmt::Display| format!("landlock: {e}");
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_write(abi))
            .map_err(|e| err(&e))?;
        if abi_num >= 6 {
            ruleset = ruleset.scope(Scope::from_all(abi)).map_err(|e| err(&e))?;
        }
        let mut created = ruleset.create().map_err(|e| err(&e))?;
        let dev_null = PathFd::new("/dev/null").map_err(|e| err(&e))?;
        created = created
            .add_rule(PathBeneath::new(dev_null, AccessFs::WriteFile))
            .map_err(|e| err(&e))?;
        for dir in write_existing_beneath {
            if let Ok(fd) = PathFd::new(dir) {
                created = created
                    .add_rule(PathBeneath::new(fd, AccessFs::WriteFile))
                    .map_err(|e| err(&e))?;
            }
        }
        let fd: Option<OwnedFd> = created.into();
        let fd = fd.ok_or_else(|| "landlock: no ruleset file descriptor".to_string())?;
        Ok(Some(ReadOnly { fd, abi: abi_num }))
    }

    /// The kernel ABI the ruleset was built for.
    pub fn abi(&self) -> i32 {
        self.abi
    }
}

/// An account to switch a child to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id; the supplementary groups are emptied.
    pub gid: u32,
}

impl Account {
    /// Looks an account up by name in the password database.
    pub fn lookup(name: &str) -> Result<Account, String> {
        let c = std::ffi::CString::new(name).map_err(|_| format!("account {name:?}: NUL"))?;
        let mut pw: libc::passwd = unsafe_zeroed_passwd();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwnam_r writes only into `pw` and `buf`, both ours and
        // sized as passed; `out` is set to `&pw` or null.
        let rc =
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return Err(format!("account {name:?} does not exist"));
        }
        Ok(Account {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
        })
    }
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: `passwd` is plain old data (integers and raw pointers); all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// What to do to a child before it executes its program.
#[derive(Debug, Clone, Copy, Default)]
pub struct Confinement<'a> {
    /// Switch to this account (needs CAP_SETUID/CAP_SETGID or root).
    pub account: Option<Account>,
    /// Resource limits.
    pub limits: Option<Limits>,
    /// Empty the permitted, effective, inheritable and ambient capability sets.
    pub drop_capabilities: bool,
    /// Remove these capabilities (bit N = capability N) from the permitted, effective and
    /// inheritable sets; with `no_new_privs` a program run as root does not get them back.
    pub withhold_capabilities: u64,
    /// Set `no_new_privs` (set-uid bits and file capabilities stop working).
    pub no_new_privs: bool,
    /// Restrict with this Landlock ruleset (implies `no_new_privs`).
    pub landlock: Option<&'a ReadOnly>,
    /// SIGKILL the child when its parent dies.
    pub die_with_parent: bool,
    /// Open this file as standard input last, after the switch, the dropped
    /// capabilities and the Landlock domain: a `< FILE` redirect reads only
    /// what the account that runs the stage may read.
    pub stdin_file: Option<&'a Path>,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

impl Confinement<'_> {
    /// Installs the confinement on `cmd`; it applies in the child after `fork`.
    /// The ruleset must stay alive until `cmd` was spawned.
    pub fn install(&self, cmd: &mut std::process::Command) {
        let account = self.account;
        let rlimits = self.limits.map(|l| l.rlimits(self.account.is_some()));
        let drop_caps = self.drop_capabilities;
        let withhold = self.withhold_capabilities;
        let landlock_fd = self.landlock.map(|r| r.fd.as_raw_fd());
        let nnp = self.no_new_privs || landlock_fd.is_some();
        let die_with_parent = self.die_with_parent;
        // Prepared here: the child must not allocate. A path with a NUL cannot be
        // opened; the hook then fails with EINVAL and nothing runs.
        let stdin_file = self
            .stdin_file
            .map(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default());
        let hook = move || -> io::Result<()> {
            let check = |rc: libc::c_long| {
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            // SAFETY (whole block): only raw system calls on integers and on
            // structs on this stack frame; async-signal-safe after fork.
            unsafe {
                // A file-size limit kills, as the kernel intends (`limit_exceeded:
                // file_size`), whatever disposition this process inherited.
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
                if die_with_parent {
                    check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into())?;
                }
                if let Some(rl) = rlimits {
                    for (res, v) in rl {
                        if res == u32::MAX {
                            continue;
                        }
                        let lim = libc::rlimit {
                            rlim_cur: v,
                            rlim_max: v,
                        };
                        check(libc::setrlimit(res, &lim).into())?;
                    }
                }
                if let Some(a) = account {
                    check(libc::setgroups(0, std::ptr::null()).into())?;
                    check(libc::setresgid(a.gid, a.gid, a.gid).into())?;
                    check(libc::setresuid(a.uid, a.uid, a.uid).into())?;
                }
                if drop_caps {
                    check(
                        libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_CLEAR_ALL,
                            0,
                            0,
                            0,
                        )
                        .into(),
                    )?;
                    let mut hdr = CapHeader {
                        version: CAP_VERSION_3,
                        pid: 0,
                    };
                    let data = [CapData {
                        effective: 0,
                        permitted: 0,
                        inheritable: 0,
                    }; 2];
                    check(libc::syscall(
                        libc::SYS_capset,
                        &mut hdr as *mut CapHeader,
                        data.as_ptr(),
                    ))?;
                }
                if withhold != 0 && !drop_caps {
                    let mut hdr = CapHeader {
                        version: CAP_VERSION_3,
                        pid: 0,
                    };
                    let mut data = [CapData {
                        effective: 0,
                        permitted: 0,
                        inheritable: 0,
                    }; 2];
                    check(libc::syscall(
                        libc::SYS_capget,
                        &mut hdr as *mut CapHeader,
                        data.as_mut_ptr(),
                    ))?;
                    for (i, d) in data.iter_mut().enumerate() {
                        // Low and high 32 bits of the mask.
                        let keep = !((withhold >> (32 * i)) as u32);
                        d.effective &= keep;
                        d.permitted &= keep;
                        d.inheritable &= keep;
                    }
                    check(libc::syscall(
                        libc::SYS_capset,
                        &mut hdr as *mut CapHeader,
                        data.as_ptr(),
                    ))?;
                }
                if nnp {
                    check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
                }
                if let Some(fd) = landlock_fd {
                    check(libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32))?;
                }
                if let Some(path) = &stdin_file {
                    if path.is_empty() {
                        return Err(io::Error::from_raw_os_error(libc::EINVAL));
                    }
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
                    );
                    check(fd.into())?;
                    check(libc::dup2(fd, 0).into())?;
                    if fd != 0 {
                        libc::close(fd);
                    }
                }
            }
            Ok(())
        };
        // SAFETY: the hook is async-signal-safe (see above) and captures only
        // integers and a raw descriptor the caller keeps open until spawn.
        unsafe {
            cmd.pre_exec(hook);
        }
    }
}

/// Undoes what a caller can leave behind across `exec` for the executor: resource limits
/// that would make its own log write or its run fail (`RLIMIT_FSIZE` 0 with SIGXFSZ ignored
/// turns every append into a quiet `EFBIG`), ignored or caught signal dispositions and a
/// blocked signal mask. Root with CAP_SYS_RESOURCE raises the limits to unlimited; without
/// it (an unprivileged lab executor, a container without the capability) only up to the
/// hard limits, and then a log write may fail, which refuses: nothing runs unrecorded.
pub fn reset_inherited() {
    for res in [
        libc::RLIMIT_FSIZE,
        libc::RLIMIT_CPU,
        libc::RLIMIT_AS,
        libc::RLIMIT_DATA,
    ] {
        if set_rlimit(res, libc::RLIM_INFINITY).is_err()
            && let Some(l) = get_rlimit(res)
        {
            let lim = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            // SAFETY: setrlimit reads one plain struct we own.
            unsafe {
                libc::setrlimit(res, &lim);
            }
        }
    }
    if get_rlimit(libc::RLIMIT_NOFILE).is_some_and(|l| l.rlim_cur < 1024) {
        let _ = set_rlimit(libc::RLIMIT_NOFILE, 1024);
    }
    // SAFETY: signal() with SIG_DFL/SIG_IGN installs no handler code; sigprocmask reads a
    // set we own.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        // Where a hard RLIMIT_FSIZE could not be raised (no CAP_SYS_RESOURCE), a log write
        // then fails with EFBIG, which refuses, instead of killing the executor unheard.
        // Every program it starts gets SIGXFSZ back at its default (Confinement).
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Signals a process group (ignores errors: it may be gone).
pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill takes two integers; a negative pid names the group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Asks for SIGKILL when this process's parent dies.
pub fn die_with_parent() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
}

/// How a waited-for process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal, when it was killed.
    pub signal: Option<i32>,
    /// Peak resident memory of it and its waited-for descendants, KiB.
    pub max_rss_kib: i64,
}

/// Waits for child `pid` (blocking) and returns its status and peak memory.
pub fn wait_pid(pid: i32) -> io::Result<Waited> {
    loop {
        let mut status = 0i32;
        // SAFETY: `rusage` is plain old data; wait4 writes only into `status`
        // and `ru`, both on this stack frame.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let (code, signal) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None)
        } else if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)))
        } else {
            (None, None)
        };
        return Ok(Waited {
            code,
            signal,
            max_rss_kib: ru.ru_maxrss,
        });
    }
}

fn term_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset only write into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP so that [`stop_requested`] can see
/// them (children start with an empty mask: std resets it).
pub fn block_stop_signals() {
    let set = term_set();
    // SAFETY: sigprocmask reads our set; the old mask is not wanted.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether one of the blocked stop signals arrived (consumes it).
pub fn stop_requested() -> bool {
    let set = term_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait reads our set and timeout; no siginfo is wanted.
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) > 0 }
}

/// Capability numbers.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Gives `path` the file capabilities CAP_SETUID and CAP_SETGID (permitted
/// and effective), as `setcap cap_setuid,cap_setgid=ep PATH` would. Needs
/// root (CAP_SETFCAP); used by the package's postinst for `aiops-sandbox`.
pub fn set_switch_file_caps(path: &Path) -> io::Result<()> {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;
    let permitted = (1u32 << CAP_SETGID) | (1u32 << CAP_SETUID);
    let mut data = Vec::with_capacity(20);
    for word in [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        permitted,
        0,
        0,
        0,
    ] {
        data.extend_from_slice(&word.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("path has a NUL"))?;
    // SAFETY: setxattr reads the two NUL-terminated strings and `data.len()`
    // bytes of `data`, all alive for the call.
    let rc = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            data.as_ptr().cast(),
            data.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
