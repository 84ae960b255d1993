//! Runs a plan without a shell: argv stages connected by pipes, `&& || ;`
//! sequencing, the few redirects the policy allows, a clean fixed
//! environment, stdin `/dev/null`, each pipeline in its own process group,
//! one wall-clock deadline that TERMs then KILLs the group, and per-stream
//! output caps that keep the head and the tail.
//!
//! Who runs what: an unprivileged stage runs as the command account
//! (switched with the daemon's CAP_SETUID/CAP_SETGID, every capability
//! dropped before `exec`), with `no_new_privs`, the read-only Landlock
//! domain and the rlimits. A privileged stage of an auto-allowed plan, and
//! the whole plan of an approved request, go to the root executor
//! (`sudo -n aiops-exec`), which reads the signed request from a frame on
//! its stdin and checks it again itself. Hitting an rlimit is reported as
//! `limit_exceeded: <which>`.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_exec::sandbox::{Confinement, Limits as Rlimits, ReadOnly, Waited};

use aiops_policy::{Connector, Pipeline, Plan, Redirect, Stage};
use aiops_proto::agent::v1::{ExecEvent, OutputChunk, Stream, exec_event};
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::Status;

pub use aiops_exec::run::{CLEAN_ENV, PATH_DIRS, normalize, resolve};

/// Where privileged stages go through.
pub const SUDO: &str = "/usr/bin/sudo";

/// How to start the root executor.
#[derive(Debug, Clone)]
pub struct ExecutorCmd {
    /// The executor binary.
    pub path: PathBuf,
    /// Through `sudo -n` (production) or directly with `--config` (a lab:
    /// it then has exactly the lab agent's own privilege).
    pub sudo: bool,
    /// The agent configuration the executor reads when started directly.
    pub config: PathBuf,
}

/// Who runs the stages of a plan, and how they are confined.
#[derive(Debug, Clone)]
pub struct Runner {
    /// `aiops-sandbox`, which switches unprivileged stages to the command
    /// account (it alone holds CAP_SETUID/CAP_SETGID) and confines them;
    /// `None` (a lab): confined here, under the daemon's own account.
    pub switch: Option<PathBuf>,
    /// Per-command rlimits.
    pub limits: Rlimits,
    /// The read-only Landlock domain; `None` when the kernel has none and
    /// the configuration allows running unconfined.
    pub readonly: Option<Arc<ReadOnly>>,
    /// The root executor.
    pub executor: ExecutorCmd,
}

/// What the executor is told about the request being run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The encoded `SignedCommand` exactly as received.
    pub signed: Vec<u8>,
    /// The request is an approved one: the whole plan goes to the executor.
    pub approved: bool,
}

/// Largest output message sent for the kept tail.
const TAIL_CHUNK: usize = 64 * 1024;

/// Time between SIGTERM and SIGKILL when a deadline passes.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit for the whole plan.
    pub timeout: Duration,
    /// Bytes kept per stream (half head, half tail).
    pub output_cap: u64,
}

/// How the plan ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Status of the last pipeline that ran (128+N when killed by signal N).
    pub exit_code: i32,
    /// Signal that killed the last pipeline's last stage, 0 if none.
    pub signal: i32,
    /// The deadline passed and the processes were killed.
    pub timed_out: bool,
    /// The client went away; the processes were killed.
    pub cancelled: bool,
    /// Bytes of stdout/stderr dropped between head and tail.
    pub stdout_dropped: u64,
    /// See `stdout_dropped`.
    pub stderr_dropped: u64,
    /// Total bytes produced per stream.
    pub stdout_total: u64,
    /// See `stdout_total`.
    pub stderr_total: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// The rlimit a stage hit (`memory`, `cpu`, `file_size`), if any.
    pub limit_exceeded: Option<&'static str>,
}

type Tx = mpsc::Sender<Result<ExecEvent, Status>>;

fn chunk(stream: Stream, data: Vec<u8>, tail: bool) -> ExecEvent {
    ExecEvent {
        event: Some(exec_event::Event::Output(OutputChunk {
            stream: stream as i32,
            data,
            tail,
        })),
    }
}

/// Runs `plan` (an approved request's plan through the executor), streaming output to `tx`.
pub async fn execute(plan: &Plan, runner: &Runner, job: &Job, limits: Limits, tx: Tx) -> Outcome {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut outcome = Outcome::default();
    let (Ok((out_r, out_w)), Ok((err_r, err_w))) = (pipe(), pipe()) else {
        outcome.exit_code = 126;
        return outcome;
    };
    let head = limits.output_cap / 2;
    let tail = limits.output_cap - head;
    let out_task = tokio::spawn(pump(out_r, Stream::Stdout, head, tail, tx.clone()));
    let err_task = tokio::spawn(pump(err_r, Stream::Stderr, head, tail, tx.clone()));

    // An approved request runs as one executor process that runs the whole
    // plan itself (as root or the approved account).
    let approved_plan;
    let pipelines: &[Pipeline] = if job.approved {
        approved_plan = [Pipeline {
            connector: Connector::Seq,
            stages: vec![Stage {
                argv: vec![WHOLE_PLAN_MARK.into()],
                privileged: true,
                redirects: Vec::new(),
            }],
        }];
        &approved_plan
    } else {
        &plan.pipelines
    };
    let mut cwd = PathBuf::from("/");
    let mut status = 0;
    let mut signal = 0;
    for (index, pipeline) in pipelines.iter().enumerate() {
        match pipeline.connector {
            Connector::And if status != 0 => continue,
            Connector::Or if status == 0 => continue,
            _ => {}
        }
        if let [stage] = pipeline.stages.as_slice()
            && stage.argv.first().map(String::as_str) == Some("cd")
            && !job.approved
        {
            status = change_dir(&mut cwd, stage, &err_w);
            signal = 0;
            continue;
        }
        let at = Place {
            runner,
            job,
            index: if job.approved {
                aiops_exec::WHOLE_PLAN
            } else {
                u32::try_from(index).unwrap_or(u32::MAX - 1)
            },
        };
        match run_pipeline(pipeline, &cwd, &out_w, &err_w, deadline, &tx, &at).await {
            PipelineEnd::Exited { code, sig, limit } => {
                status = code;
                signal = sig;
                if outcome.limit_exceeded.is_none() {
                    outcome.limit_exceeded = limit;
                }
            }
            PipelineEnd::TimedOut => {
                outcome.timed_out = true;
                status = 124;
                signal = Signal::SIGTERM as i32;
                break;
            }
            PipelineEnd::Cancelled => {
                outcome.cancelled = true;
                status = 130;
                break;
            }
            PipelineEnd::SpawnFailed(msg) => {
                write_stderr(&err_w, &format!("aiops-agent: {msg}\n"));
                status = 127;
                signal = 0;
            }
        }
    }
    if let Some(which) = outcome.limit_exceeded {
        write_stderr(&err_w, &format!("aiops-agent: limit_exceeded: {which}\n"));
    }
    drop(out_w);
    drop(err_w);
    // A process that left our process groups may hold the pipes open; never wait for it forever.
    let grace = tokio::time::Instant::now() + KILL_GRACE;
    let out = finish_pump(out_task, grace).await;
    let err = finish_pump(err_task, grace).await;
    // The kept tail goes in chunks like the head: one message per tail would
    // exceed the client's message size limit once the cap is large.
    for (stream, pumped) in [(Stream::Stdout, &out), (Stream::Stderr, &err)] {
        for part in pumped.tail.chunks(TAIL_CHUNK) {
            let _ = tx.send(Ok(chunk(stream, part.to_vec(), true))).await;
        }
    }
    outcome.exit_code = status;
    outcome.signal = signal;
    outcome.stdout_total = out.total;
    outcome.stderr_total = err.total;
    outcome.stdout_dropped = out.dropped;
    outcome.stderr_dropped = err.dropped;
    outcome.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    outcome
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

fn write_stderr(err_w: &OwnedFd, msg: &str) {
    use std::io::Write;
    if let Ok(fd) = err_w.try_clone() {
        let _ = std::fs::File::from(fd).write_all(msg.as_bytes());
    }
}

fn change_dir(cwd: &mut PathBuf, stage: &Stage, err_w: &OwnedFd) -> i32 {
    let target = match stage.argv.get(1) {
        Some(dir) if stage.argv.len() == 2 => normalize(&cwd.join(dir)),
        _ => {
            write_stderr(err_w, "cd: exactly one directory argument is supported\n");
            return 1;
        }
    };
    if target.is_dir() {
        *cwd = target;
        0
    } else {
        write_stderr(
            err_w,
            &format!("cd: {}: No such file or directory\n", target.display()),
        );
        1
    }
}

enum PipelineEnd {
    Exited {
        code: i32,
        sig: i32,
        limit: Option<&'static str>,
    },
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

/// Where a stage's stdout or stderr goes.
enum Sink {
    Fd(OwnedFd),
    Null,
}

impl Sink {
    fn stdio(&self) -> std::io::Result<Stdio> {
        Ok(match self {
            Sink::Fd(fd) => Stdio::from(fd.try_clone()?),
            Sink::Null => Stdio::null(),
        })
    }
    fn dup(&self) -> std::io::Result<Sink> {
        Ok(match self {
            Sink::Fd(fd) => Sink::Fd(fd.try_clone()?),
            Sink::Null => Sink::Null,
        })
    }
}

/// The argv a whole approved plan is run under (never a program name).
const WHOLE_PLAN_MARK: &str = "\0aiops-exec";

/// Where in the plan a pipeline is, for the executor's frame.
struct Place<'a> {
    runner: &'a Runner,
    job: &'a Job,
    index: u32,
}

impl Place<'_> {
    /// A pipe whose first bytes are the executor's frame for stage `stage`;
    /// the executor reads exactly the frame and leaves the rest to the stage.
    fn framed_pipe(&self, stage: usize) -> Result<(OwnedFd, OwnedFd), String> {
        let stage = if self.index == aiops_exec::WHOLE_PLAN {
            aiops_exec::WHOLE_PLAN
        } else {
            u32::try_from(stage).map_err(|e| e.to_string())?
        };
        let frame = aiops_exec::frame(self.index, stage, &self.job.signed);
        // The frame must fit the pipe's buffer: nobody reads before the executor starts.
        if frame.len() > 60 * 1024 {
            return Err("request too large for the executor".into());
        }
        let (r, w) = pipe().map_err(|e| e.to_string())?;
        let mut f = std::fs::File::from(w.try_clone().map_err(|e| e.to_string())?);
        f.write_all(&frame)
            .map_err(|e| format!("executor frame: {e}"))?;
        Ok((r, w))
    }

    fn executor_command(&self) -> Command {
        let e = &self.runner.executor;
        if e.sudo {
            let mut c = Command::new(SUDO);
            c.arg("-n").arg(&e.path);
            c
        } else {
            let mut c = Command::new(&e.path);
            c.arg("--config").arg(&e.config);
            c
        }
    }
}

fn build_stage(
    stage: &Stage,
    cwd: &Path,
    stdin: Stdio,
    stdout: Sink,
    stderr: Sink,
    pgid: Option<u32>,
    at: &Place<'_>,
) -> Result<Command, String> {
    let pgid = pgid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    if stage.privileged {
        // The executor applies the stage's redirects itself, from its own plan.
        let mut cmd = at.executor_command();
        cmd.env_clear()
            .envs(CLEAN_ENV)
            .current_dir("/")
            .process_group(pgid)
            .stdin(stdin)
            .stdout(stdout.stdio().map_err(|e| e.to_string())?)
            .stderr(stderr.stdio().map_err(|e| e.to_string())?);
        return Ok(cmd);
    }
    let argv0 = stage.argv.first().ok_or("empty stage")?;
    let program = resolve(argv0)?;
    let r = at.runner;
    // The last `< FILE` wins (as in bash). The daemon never opens it: the process that
    // runs the stage does, after the switch to the command account and inside Landlock.
    let stdin_file: Option<PathBuf> = stage
        .redirects
        .iter()
        .filter_map(|r| match r {
            Redirect::StdinFromFile(p) => Some(cwd.join(p)),
            _ => None,
        })
        .next_back();
    let mut cmd = match &r.switch {
        Some(switch) => {
            let mut c = Command::new(switch);
            if let Some(f) = &stdin_file {
                c.arg("--stdin-file").arg(f);
            }
            c.arg(&program);
            c
        }
        None => Command::new(&program),
    };
    cmd.args(&stage.argv[1..])
        .env_clear()
        .envs(CLEAN_ENV)
        .current_dir(cwd)
        .process_group(pgid);
    let mut stdin = stdin;
    let (mut out, mut err) = (stdout, stderr);
    for r in &stage.redirects {
        match r {
            Redirect::StdoutToNull => out = Sink::Null,
            Redirect::StderrToNull => err = Sink::Null,
            Redirect::StderrToStdout => err = out.dup().map_err(|e| e.to_string())?,
            // Opened by the stage's own process (above).
            Redirect::StdinFromFile(_) => stdin = Stdio::null(),
        }
    }
    cmd.stdin(stdin)
        .stdout(out.stdio().map_err(|e| e.to_string())?)
        .stderr(err.stdio().map_err(|e| e.to_string())?);
    if r.switch.is_none() {
        Confinement {
            account: None,
            limits: Some(r.limits),
            drop_capabilities: true,
            no_new_privs: true,
            landlock: r.readonly.as_deref(),
            // A lab agent killed with SIGKILL takes its stages with it (a
            // packaged agent's stages also die with the unit's cgroup).
            die_with_parent: true,
            stdin_file: stdin_file.as_deref(),
            withhold_capabilities: 0,
        }
        .install(&mut cmd);
    }
    Ok(cmd)
}

/// Which rlimit a stage that ended this way most likely hit.
fn limit_hit(w: &Waited, limits: &Rlimits) -> Option<&'static str> {
    match w.signal {
        Some(libc::SIGXCPU) => return Some("cpu"),
        Some(libc::SIGXFSZ) => return Some("file_size"),
        _ => {}
    }
    let failed = w.code.is_some_and(|c| c != 0) || w.signal.is_some();
    // A failed allocation under RLIMIT_AS: the process had grown to a large
    // part of its address-space limit (growth doubles, so at least a quarter).
    let limit_kib = i64::try_from(limits.memory_mb.saturating_mul(1024)).unwrap_or(i64::MAX);
    (failed && limits.memory_mb > 0 && w.max_rss_kib >= limit_kib / 4).then_some("memory")
}

/// A spawned stage. Its waiter starts only once every stage of the
/// pipeline is spawned: an unreaped leader keeps the process group alive
/// for the stages that join it.
struct Running {
    pid: u32,
    waiter: Option<tokio::task::JoinHandle<std::io::Result<Waited>>>,
    done: Option<Result<Waited, String>>,
}

impl Running {
    fn start_waiter(&mut self) {
        let raw = i32::try_from(self.pid).unwrap_or(-1);
        if self.waiter.is_none() {
            self.waiter = Some(tokio::task::spawn_blocking(move || {
                aiops_exec::sandbox::wait_pid(raw)
            }));
        }
    }

    /// Waits for the process; can be called again (a join handle cannot).
    async fn wait(&mut self) -> std::io::Result<Waited> {
        self.start_waiter();
        if self.done.is_none()
            && let Some(w) = self.waiter.as_mut()
        {
            self.done = Some(match w.await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            });
        }
        match &self.done {
            Some(Ok(w)) => Ok(*w),
            Some(Err(e)) => Err(std::io::Error::other(e.clone())),
            None => Err(std::io::Error::other("no waiter")),
        }
    }
}

fn spawn(cmd: &mut Command) -> std::io::Result<Running> {
    let child = cmd.spawn()?;
    // std's Child is not waited on: the waiter reaps with wait4 for the rusage.
    Ok(Running {
        pid: child.id(),
        waiter: None,
        done: None,
    })
}

async fn run_pipeline(
    pipeline: &Pipeline,
    cwd: &Path,
    out_w: &OwnedFd,
    err_w: &OwnedFd,
    deadline: tokio::time::Instant,
    tx: &Tx,
    at: &Place<'_>,
) -> PipelineEnd {
    let mut children: Vec<Running> = Vec::new();
    let mut pgid: Option<u32> = None;
    let mut prev_read: Option<OwnedFd> = None;
    let last = pipeline.stages.len().saturating_sub(1);
    // Spawn every stage before waiting on any: an unreaped leader keeps the
    // process group alive for the stages that join it.
    for (i, stage) in pipeline.stages.iter().enumerate() {
        let spawned = (|| -> Result<(Running, Option<OwnedFd>), String> {
            let stdin = match prev_read.take() {
                Some(fd) => Stdio::from(fd),
                // The executor's frame comes first on its stdin.
                None if stage.privileged => Stdio::from(at.framed_pipe(i)?.0),
                None => Stdio::null(),
            };
            let (next_read, stdout) = if i < last {
                let (r, w) = if pipeline.stages[i + 1].privileged {
                    at.framed_pipe(i + 1)?
                } else {
                    pipe().map_err(|e| e.to_string())?
                };
                (Some(r), Sink::Fd(w))
            } else {
                (
                    None,
                    Sink::Fd(out_w.try_clone().map_err(|e| e.to_string())?),
                )
            };
            let stderr = Sink::Fd(err_w.try_clone().map_err(|e| e.to_string())?);
            let mut cmd = build_stage(stage, cwd, stdin, stdout, stderr, pgid, at)?;
            let child = spawn(&mut cmd).map_err(|e| {
                let name = if stage.privileged {
                    "aiops-exec"
                } else {
                    stage.argv[0].as_str()
                };
                format!("{name}: {e}")
            })?;
            Ok((child, next_read))
        })();
        match spawned {
            Ok((child, next_read)) => {
                if pgid.is_none() {
                    pgid = Some(child.pid);
                }
                children.push(child);
                prev_read = next_read;
            }
            Err(msg) => {
                kill_group(pgid, Signal::SIGKILL);
                for c in &mut children {
                    let _ = c.wait().await;
                }
                return PipelineEnd::SpawnFailed(msg);
            }
        }
    }
    drop(prev_read);
    for c in &mut children {
        c.start_waiter();
    }

    let waited = {
        let all = futures_util::future::join_all(children.iter_mut().map(Running::wait));
        tokio::select! {
            r = all => Some(r),
            () = tokio::time::sleep_until(deadline) => None,
            () = tx.closed() => {
                kill_group(pgid, Signal::SIGKILL);
                for c in &mut children { let _ = c.wait().await; }
                return PipelineEnd::Cancelled;
            }
        }
    };
    let Some(statuses) = waited else {
        kill_group(pgid, Signal::SIGTERM);
        let all = futures_util::future::join_all(children.iter_mut().map(Running::wait));
        if tokio::time::timeout(KILL_GRACE, all).await.is_err() {
            kill_group(pgid, Signal::SIGKILL);
        }
        for c in &mut children {
            let _ = c.wait().await;
        }
        // Leftovers that ignored TERM, or were forked in the grace period.
        kill_group(pgid, Signal::SIGKILL);
        return PipelineEnd::TimedOut;
    };
    // The pipeline is over; background leftovers in its group go with it.
    kill_group(pgid, Signal::SIGKILL);
    let limit = statuses
        .iter()
        .flatten()
        .find_map(|w| limit_hit(w, &at.runner.limits));
    match statuses.last() {
        Some(Ok(st)) => match (st.code, st.signal) {
            (Some(code), _) => PipelineEnd::Exited {
                code,
                sig: 0,
                limit,
            },
            (None, Some(sig)) => PipelineEnd::Exited {
                code: 128 + sig,
                sig,
                limit,
            },
            (None, None) => PipelineEnd::Exited {
                code: 1,
                sig: 0,
                limit,
            },
        },
        Some(Err(e)) => PipelineEnd::SpawnFailed(format!("wait: {e}")),
        None => PipelineEnd::Exited {
            code: 0,
            sig: 0,
            limit,
        },
    }
}

fn kill_group(pgid: Option<u32>, sig: Signal) {
    if let Some(p) = pgid.and_then(|p| i32::try_from(p).ok())
        && p > 1
    {
        let _ = killpg(Pid::from_raw(p), sig);
    }
}

struct Pumped {
    tail: Vec<u8>,
    total: u64,
    dropped: u64,
}

async fn finish_pump(
    task: tokio::task::JoinHandle<Pumped>,
    deadline: tokio::time::Instant,
) -> Pumped {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(p)) => p,
        _ => {
            abort.abort();
            Pumped {
                tail: Vec::new(),
                total: 0,
                dropped: 0,
            }
        }
    }
}

/// Reads one stream to EOF: the first `head` bytes go to the client as they
/// come; after that only the last `tail` bytes are kept in memory.
async fn pump(fd: OwnedFd, stream: Stream, head: u64, tail: u64, tx: Tx) -> Pumped {
    let tail_cap = usize::try_from(tail).unwrap_or(usize::MAX);
    let mut ring: VecDeque<u8> = VecDeque::new();
    let mut head_left = head;
    let mut total = 0u64;
    let mut sent = 0u64;
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return Pumped {
            tail: Vec::new(),
            total: 0,
            dropped: 0,
        };
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        let mut data = &buf[..n];
        if head_left > 0 {
            let take = usize::try_from(head_left).unwrap_or(usize::MAX).min(n);
            // A closed client is noticed by the executor, which kills the group.
            let _ = tx
                .send(Ok(chunk(stream, data[..take].to_vec(), false)))
                .await;
            head_left -= take as u64;
            sent += take as u64;
            data = &data[take..];
        }
        if tail_cap == 0 || data.is_empty() {
            continue;
        }
        if data.len() >= tail_cap {
            ring.clear();
            ring.extend(&data[data.len() - tail_cap..]);
        } else {
            let overflow = (ring.len() + data.len()).saturating_sub(tail_cap);
            ring.drain(..overflow);
            ring.extend(data);
        }
    }
    let tail: Vec<u8> = ring.into();
    Pumped {
        dropped: total - sent - tail.len() as u64,
        tail,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cmds: &[(&[&str], Connector)]) -> Plan {
        Plan {
            pipelines: cmds
                .iter()
                .map(|(argv, c)| Pipeline {
                    connector: *c,
                    stages: vec![Stage {
                        argv: argv.iter().map(|s| s.to_string()).collect(),
                        privileged: false,
                        redirects: vec![],
                    }],
                })
                .collect(),
            shell: false,
        }
    }

    fn runner() -> Runner {
        Runner {
            switch: None,
            limits: Rlimits::default(),
            readonly: ReadOnly::new(&[]).expect("landlock").map(Arc::new),
            executor: ExecutorCmd {
                path: "/nonexistent/aiops-exec".into(),
                sudo: false,
                config: "/nonexistent/agent.yml".into(),
            },
        }
    }

    fn job() -> Job {
        Job {
            signed: Vec::new(),
            approved: false,
        }
    }

    async fn run(p: &Plan, cap: u64, timeout: Duration) -> (Outcome, Vec<u8>, Vec<u8>) {
        let (tx, mut rx) = mpsc::channel(16);
        let limits = Limits {
            timeout,
            output_cap: cap,
        };
        let p = p.clone();
        let h = tokio::spawn(async move { execute(&p, &runner(), &job(), limits, tx).await });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(Ok(ev)) = rx.recv().await {
            if let Some(exec_event::Event::Output(c)) = ev.event {
                if c.stream == Stream::Stdout as i32 {
                    out.extend(c.data)
                } else {
                    err.extend(c.data)
                }
            }
        }
        (h.await.unwrap(), out, err)
    }

    #[tokio::test]
    async fn sequencing_follows_bash() {
        let p = plan(&[
            (&["false"], Connector::Seq),
            (&["echo", "skipped"], Connector::And),
            (&["echo", "ran"], Connector::Or),
        ]);
        let (o, out, err) = run(&p, 1024, Duration::from_secs(10)).await;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "ran\n",
            "{}",
            String::from_utf8_lossy(&err)
        );
        assert_eq!(o.exit_code, 0);
    }

    #[tokio::test]
    async fn pipes_connect_stages_and_env_is_clean() {
        let mut p = plan(&[(&["env"], Connector::Seq)]);
        p.pipelines[0].stages.push(Stage {
            argv: vec!["sort".into()],
            privileged: false,
            redirects: vec![],
        });
        let (o, out, err) = run(&p, 4096, Duration::from_secs(10)).await;
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
        let text = String::from_utf8_lossy(&out);
        let keys: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "GIT_PAGER",
                "LANG",
                "LESSSECURE",
                "PAGER",
                "PATH",
                "SYSTEMD_COLORS",
                "SYSTEMD_PAGER",
                "SYSTEMD_PAGERSECURE"
            ]
        );
        assert_eq!(o.exit_code, 0);
    }

    #[tokio::test]
    async fn output_cap_keeps_head_and_tail() {
        let p = plan(&[(&["seq", "1", "100000"], Connector::Seq)]);
        let (o, out, _) = run(&p, 100, Duration::from_secs(10)).await;
        assert_eq!(out.len(), 100);
        assert!(out.starts_with(b"1\n2\n3\n"));
        assert!(out.ends_with(b"99999\n100000\n"));
        assert_eq!(o.stdout_total, 588_895);
        assert_eq!(o.stdout_dropped, 588_895 - 100);
    }

    #[tokio::test]
    async fn a_large_tail_is_sent_in_bounded_chunks() {
        let p = plan(&[(&["seq", "1", "200000"], Connector::Seq)]);
        let (tx, mut rx) = mpsc::channel(16);
        let limits = Limits {
            timeout: Duration::from_secs(10),
            output_cap: 400_000,
        };
        let h = tokio::spawn(async move { execute(&p, &runner(), &job(), limits, tx).await });
        let mut tail = Vec::new();
        while let Some(Ok(ev)) = rx.recv().await {
            if let Some(exec_event::Event::Output(c)) = ev.event {
                assert!(c.data.len() <= TAIL_CHUNK);
                if c.tail {
                    tail.extend(c.data);
                }
            }
        }
        let o = h.await.unwrap();
        assert_eq!(tail.len(), 200_000);
        assert!(tail.ends_with(b"199999\n200000\n"));
        assert_eq!(o.stdout_dropped, o.stdout_total - 400_000);
    }

    #[tokio::test]
    async fn missing_program_and_bad_paths_are_not_run() {
        for argv0 in [
            "no-such-program-xyz",
            "./ls",
            "/tmp/ls",
            "/usr/bin/../bin/ls",
        ] {
            let p = plan(&[(&[argv0], Connector::Seq)]);
            let (o, _, err) = run(&p, 1024, Duration::from_secs(10)).await;
            assert_eq!(o.exit_code, 127, "{argv0}");
            assert!(!err.is_empty());
        }
    }

    #[tokio::test]
    async fn a_stdin_redirect_is_opened_by_the_stage_itself_relative_to_its_directory() {
        let mut p = plan(&[
            (&["cd", "/etc"], Connector::Seq),
            (&["cat"], Connector::And),
        ]);
        p.pipelines[1].stages[0].redirects = vec![Redirect::StdinFromFile("hostname".into())];
        let (o, out, err) = run(&p, 4096, Duration::from_secs(10)).await;
        let want = std::fs::read_to_string("/etc/hostname").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            want,
            "{}",
            String::from_utf8_lossy(&err)
        );
        assert_eq!(o.exit_code, 0);
        // A file that cannot be opened: the stage does not run.
        let mut p = plan(&[(&["echo", "RAN-MARKER"], Connector::Seq)]);
        p.pipelines[0].stages[0].redirects = vec![Redirect::StdinFromFile("/nonexistent".into())];
        let (o, out, err) = run(&p, 4096, Duration::from_secs(10)).await;
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        assert_ne!(o.exit_code, 0);
        assert!(
            String::from_utf8_lossy(&err).contains("No such file"),
            "{}",
            String::from_utf8_lossy(&err)
        );
    }

    #[tokio::test]
    async fn cd_changes_directory_for_later_pipelines() {
        let p = plan(&[
            (&["cd", "/proc/self/.."], Connector::Seq),
            (&["pwd"], Connector::And),
        ]);
        let (_, out, _) = run(&p, 1024, Duration::from_secs(10)).await;
        assert_eq!(String::from_utf8_lossy(&out), "/proc\n");
    }
}
