//! The Teams approver bot (`aiops approver teams`) end to end, against a
//! loopback Bot Framework that speaks the real wire protocol (OpenID metadata,
//! JWKS, client-credentials token endpoint, Bot Connector activities) and
//! with real lab agents over mTLS: a pending approval is posted as an
//! Adaptive Card; a press is accepted only with a valid Bot Framework token
//! from a mapped approver in the approvers' conversation; it runs the command
//! once (the agent checks the approver-signed grant) and the card shows the
//! result. Every refusal leaves nothing run and an audit record; the app
//! secret never reaches a log, an audit record or an error message.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiops_e2e::botframework::{
    APP_ID, CONVERSATION, Call, Endpoint, FakeBotFramework, RsaKey, SECRET, card_of, invoke,
    self_signed,
};
use aiops_e2e::{Lab, aiops_bin, free_ports};
use serde_json::{Value, json};

const ALICE: &str = "0b2f6c1e-1a2b-4c3d-8e9f-a0b1c2d3e4f5";
const HERMES: &str = "7c8d9e0f-1111-4222-8333-944455556666";
const MALLORY: &str = "dddddddd-0000-4000-8000-eeeeeeeeeeee";

/// The bot as a child process; killed on drop.
struct BotProcess {
    child: Child,
}

impl BotProcess {
    fn start(lab: &Lab, teams_config: &Path, name: &str) -> BotProcess {
        let child = Command::new(aiops_bin())
            .arg("--config")
            .arg(lab.config())
            .args(["approver", "teams", "--teams-config"])
            .arg(teams_config)
            .env("AIOPS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(lab.tmp.path().join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(lab.tmp.path().join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("aiops approver teams starts");
        BotProcess { child }
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    lab: Lab,
    cfg: PathBuf,
    endpoint: Endpoint,
    key: RsaKey,
}

/// A production lab whose approvers are alice, hermes and this account; the bot's config and secret.
fn setup(fake: &FakeBotFramework, https: bool) -> Setup {
    let lab = Lab::init(1, "production");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    lab.edit(
        "config.yml",
        &format!("approvers: [{me}]"),
        &format!("approvers: [alice, hermes, {me}]"),
    );
    lab.up();
    let key = RsaKey::generate(lab.tmp.path(), "bf-key-1");
    fake.add_key(key.jwk(&["msteams", "skype", "webchat"]));
    let secret = lab.tmp.path().join("teams.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_ports(1);
    let (listen, endpoint) = if https {
        let (cert, key, der) = self_signed(lab.tmp.path());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        (
            format!("tls_cert: {}\ntls_key: {}\n", cert.display(), key.display()),
            Endpoint::Https(port, der),
        )
    } else {
        (
            "plain_http_behind_proxy: true\n".to_string(),
            Endpoint::Http(port),
        )
    };
    let cfg = lab.tmp.path().join("approver-teams.yml");
    std::fs::write(
        &cfg,
        format!(
            "app_id: {APP_ID}\napp_secret_file: teams.secret\ntoken_endpoint: {}\nopenid_metadata: {}\n\
             service_url: {}\nconversation_id: \"{CONVERSATION}\"\ntenant_id: {}\n\
             approvers:\n  {ALICE}: alice\n  {HERMES}: hermes\nlisten: 127.0.0.1:{port}\n{listen}keys_min_refetch_secs: 0\n",
            fake.token_endpoint(),
            fake.openid(),
            fake.service_url(),
            aiops_e2e::botframework::TENANT,
        ),
    )
    .unwrap();
    Setup {
        lab,
        cfg,
        endpoint,
        key,
    }
}

fn request(lab: &Lab, requester: &str, command: &str) -> String {
    let req = json!({"target": "srv1", "command": command, "requester": requester, "reason": "teams e2e"});
    let (answer, code) = lab.run(req.to_string().as_bytes());
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    answer["approval_id"].as_str().unwrap().to_string()
}

/// The POST that carried the card of approval `id`.
fn posted(fake: &FakeBotFramework, id: &str) -> Call {
    fake.wait_for("the approval's card", |c| {
        c.method == "POST" && card_of(c).to_string().contains(id)
    })
}

/// The PUTs of activity `activity_id` so far.
fn updates(fake: &FakeBotFramework, activity_id: &str) -> Vec<Call> {
    fake.calls()
        .into_iter()
        .filter(|c| c.method == "PUT" && c.activity_id == activity_id)
        .collect()
}

fn state(lab: &Lab, id: &str) -> String {
    let out = lab.aiops(&["approvals", "list", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .map(|a| a["state"].as_str().unwrap().to_string())
        .unwrap()
}

fn executed_on_agent(lab: &Lab) -> usize {
    lab.agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "executed")
        .count()
}

/// The audit records of refused presses with `code`.
fn refusals(lab: &Lab, code: &str) -> Vec<Value> {
    lab.audit()
        .into_iter()
        .filter(|r| r["event"] == "approval_refused" && r["code"] == code)
        .collect()
}

/// The text of an invoke answer that shows a message.
fn message(answer: &Value) -> String {
    assert_eq!(
        answer["type"], "application/vnd.microsoft.activity.message",
        "{answer}"
    );
    answer["value"].as_str().unwrap().to_string()
}

/// No file of the lab and nothing the bot printed contains the secret, except the secret file.
fn assert_secret_nowhere(lab: &Lab, fake: &FakeBotFramework) {
    let mut checked = 0;
    let mut stack = vec![lab.tmp.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "teams.secret" {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                assert!(
                    !text.contains(SECRET),
                    "{} contains the app secret",
                    p.display()
                );
                assert!(
                    !text.contains("SECRET-9fLw2"),
                    "{} contains part of the app secret",
                    p.display()
                );
                checked += 1;
            }
        }
    }
    for must in [
        "audit.jsonl",
        "agents/srv1/audit.jsonl",
        "runtime/teams-approver.json",
    ] {
        assert!(lab.dir.join(must).exists(), "{must} was not checked");
    }
    assert!(checked >= 8, "only {checked} files checked");
    // The secret went only to the token endpoint.
    let g = fake.shared.0.lock().unwrap();
    for b in &g.bodies {
        if !b.contains("client_secret=") {
            assert!(
                !b.contains("SECRET-9fLw2"),
                "the secret was sent outside the token request: {b}"
            );
        }
    }
}

#[test]
fn a_teams_press_runs_once_and_every_forged_press_is_refused() {
    let fake = FakeBotFramework::start();
    let s = setup(&fake, true);
    let lab = &s.lab;
    let bot = BotProcess::start(lab, &s.cfg, "bot");
    s.endpoint.wait_up();
    let marker = lab.tmp.path().join("approved-in-teams");
    let command = format!("touch {}", marker.display());
    let id = request(lab, "assistant", &command);

    // The card: every fact of the request, Approve / Deny as Action.Execute bound to it.
    let post = posted(&fake, &id);
    assert_eq!(post.conversation, CONVERSATION);
    assert_eq!(post.body["type"], "message");
    assert_eq!(
        post.body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = card_of(&post);
    assert_eq!(card["type"], "AdaptiveCard");
    let text = card.to_string();
    for fact in [
        command.as_str(),
        "srv1",
        "assistant",
        "teams e2e",
        "approval_required",
        id.as_str(),
        "Expires",
        // What the privilege will be: the plan that runs, as whom, where, and the undo hint.
        "Plan (what runs)",
        &format!("1. touch {}", marker.display()),
        "Runs as",
        "root (every stage of the plan)",
        "srv1 (1)",
        "reversible if you note",
    ] {
        assert!(text.contains(fact), "the card lacks {fact:?}: {text}");
    }
    let actions = card["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["type"], "Action.Execute");
    assert_eq!(actions[0]["verb"], "approve");
    assert_eq!(actions[1]["verb"], "deny");
    assert_eq!(actions[0]["data"]["approval_id"], id.as_str());
    let card_id = post.activity_id.clone();
    let su = fake.service_url();
    let good =
        |act: &str, aad: &str, verb: &str| invoke(&su, act, aad, CONVERSATION, &card_id, verb, &id);
    let token = s.key.sign(&fake.claims());

    // Forged or misdirected presses by the approver herself: all refused, nothing runs.
    let unknown = RsaKey::generate(lab.tmp.path(), "attacker-key");
    let mut claims = fake.claims();
    let mut forged = Vec::new();
    forged.push((
        "unknown key",
        unknown.sign(&claims),
        good("f1", ALICE, "approve"),
    ));
    claims["aud"] = json!("00000000-0000-0000-0000-000000000000");
    forged.push((
        "wrong audience",
        s.key.sign(&claims),
        good("f2", ALICE, "approve"),
    ));
    let mut claims = fake.claims();
    claims["iss"] = json!("https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/");
    forged.push((
        "wrong issuer",
        s.key.sign(&claims),
        good("f3", ALICE, "approve"),
    ));
    let mut claims = fake.claims();
    claims["exp"] = json!(aiops_e2e::botframework::now() - 600);
    claims["nbf"] = json!(aiops_e2e::botframework::now() - 4000);
    forged.push(("expired", s.key.sign(&claims), good("f4", ALICE, "approve")));
    // A token whose claims were edited after signing (audience of another bot, re-encoded).
    let other = {
        let mut c = fake.claims();
        c["aud"] = json!("11111111-2222-3333-4444-555555555555");
        s.key.sign(&c)
    };
    let parts: Vec<&str> = other.split('.').collect();
    let mine: Vec<&str> = token.split('.').collect();
    forged.push((
        "tampered token",
        format!("{}.{}.{}", parts[0], mine[1], parts[2]),
        good("f5", ALICE, "approve"),
    ));
    // A genuine token replayed with a body pointing at another service URL.
    let mut body = good("f6", ALICE, "approve");
    body["serviceUrl"] = json!("https://evil.example/teams/");
    forged.push(("tampered body", token.clone(), body));
    for (what, tok, act) in &forged {
        let (status, answer) = s.endpoint.send(tok, act);
        assert_eq!(status, 403, "{what}: {answer}");
        assert_eq!(
            answer["error"]["code"], "teams_unauthenticated",
            "{what}: {answer}"
        );
    }
    let (status, _) = s
        .endpoint
        .send_raw(None, good("f7", ALICE, "approve").to_string().as_bytes());
    assert_eq!(status, 401, "no Authorization header");
    assert_eq!(
        refusals(lab, "teams_unauthenticated").len(),
        forged.len() + 1
    );
    let reasons: Vec<String> = refusals(lab, "teams_unauthenticated")
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_string())
        .collect();
    for needle in [
        "not in the Bot Framework's signing keys",
        "audience",
        "issuer",
        "expired",
        "signature",
        "serviceurl",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "no refusal names {needle:?}: {reasons:?}"
        );
    }
    // The unknown key made the bot fetch the keys again (rotation), and still refuse.
    assert!(fake.shared.0.lock().unwrap().jwks_fetches >= 2);

    // Valid tokens, but the wrong person or place.
    let (_, answer) = s.endpoint.send(&token, &good("m1", MALLORY, "approve"));
    assert!(message(&answer).contains("not an approver"), "{answer}");
    assert_eq!(refusals(lab, "teams_not_an_approver").len(), 1);
    let elsewhere = invoke(
        &su,
        "m2",
        ALICE,
        "19:0ther0ther0ther@thread.tacv2",
        &card_id,
        "approve",
        &id,
    );
    let (_, answer) = s.endpoint.send(&token, &elsewhere);
    assert!(
        message(&answer).contains("not the approvers' conversation"),
        "{answer}"
    );
    assert_eq!(refusals(lab, "teams_wrong_conversation").len(), 1);
    let other_card = invoke(
        &su,
        "m3",
        ALICE,
        CONVERSATION,
        "1733000099999",
        "approve",
        &id,
    );
    let (_, answer) = s.endpoint.send(&token, &other_card);
    assert!(message(&answer).contains("not on the card"), "{answer}");
    assert!(!marker.exists(), "a refused press ran the command");
    assert_eq!(state(lab, &id), "pending");
    assert_eq!(executed_on_agent(lab), 0);
    assert!(
        updates(&fake, &card_id).is_empty(),
        "a refusal changed the card"
    );

    // Alice presses Approve: the command runs once, the agent verified her grant.
    let press = good("a1", ALICE, "approve");
    let (status, answer) = s.endpoint.send(&token, &press);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["statusCode"], 200);
    assert_eq!(
        answer["type"], "application/vnd.microsoft.card.adaptive",
        "{answer}"
    );
    assert!(marker.exists(), "the approved command did not run");
    let shown = answer["value"].to_string();
    assert!(
        shown.contains("Approved by alice") && shown.contains("exit code 0"),
        "{shown}"
    );
    assert!(
        answer["value"].get("actions").is_none(),
        "buttons left on the card"
    );
    let put = fake.wait_for("the card's update", |c| {
        c.method == "PUT" && c.activity_id == card_id
    });
    assert_eq!(put.conversation, CONVERSATION);
    let updated = card_of(&put).to_string();
    assert!(
        updated.contains("Approved by alice") && updated.contains("exit code 0"),
        "{updated}"
    );
    assert!(
        updated.contains(&command),
        "the updated card lost the request: {updated}"
    );
    assert_eq!(executed_on_agent(lab), 1);
    assert_eq!(state(lab, &id), "used");
    let accepted = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["event"] == "accepted")
        .unwrap();
    assert_eq!(
        accepted["approver"], "alice",
        "the agent saw alice's signed grant"
    );
    let approved = lab
        .audit()
        .into_iter()
        .find(|r| r["event"] == "approved" && r["approval_id"] == id.as_str())
        .unwrap();
    assert_eq!(approved["resolver"], "alice");

    // The same invoke again (a replay), and a new press on the resolved card: nothing runs again.
    std::fs::remove_file(&marker).unwrap();
    let (_, answer) = s.endpoint.send(&token, &press);
    assert!(message(&answer).contains("already handled"), "{answer}");
    assert_eq!(refusals(lab, "teams_replayed").len(), 1);
    let (_, answer) = s.endpoint.send(&token, &good("a2", ALICE, "approve"));
    assert!(message(&answer).contains("already resolved"), "{answer}");
    assert_eq!(refusals(lab, "teams_already_resolved").len(), 1);
    assert!(!marker.exists());
    assert_eq!(executed_on_agent(lab), 1);
    assert_eq!(updates(&fake, &card_id).len(), 1);

    // Key rotation: a token signed by a key the bot has not seen yet, now published, is accepted.
    let rotated = RsaKey::generate(lab.tmp.path(), "bf-key-2");
    fake.add_key(rotated.jwk(&["msteams"]));
    let marker2 = lab.tmp.path().join("approved-with-a-rotated-key");
    let id2 = request(lab, "assistant", &format!("touch {}", marker2.display()));
    let post2 = posted(&fake, &id2);
    let press2 = invoke(
        &su,
        "r1",
        ALICE,
        CONVERSATION,
        &post2.activity_id,
        "approve",
        &id2,
    );
    let (_, answer) = s.endpoint.send(&rotated.sign(&fake.claims()), &press2);
    assert!(
        answer["value"].to_string().contains("exit code 0"),
        "{answer}"
    );
    assert!(marker2.exists());
    // A key not endorsed for Teams is refused.
    let webchat_only = RsaKey::generate(lab.tmp.path(), "bf-key-webchat");
    fake.add_key(webchat_only.jwk(&["webchat"]));
    let (status, answer) = s.endpoint.send(
        &webchat_only.sign(&fake.claims()),
        &good("w1", ALICE, "approve"),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("endorsed"),
        "{answer}"
    );

    assert!(lab.aiops(&["audit", "verify"]).status.success());
    let g = fake.shared.0.lock().unwrap();
    assert_eq!(g.unauthorized_calls, 0);
    assert_eq!(g.bad_token_requests, 0);
    assert_eq!(g.issued.len(), 1, "the bot's token is cached");
    drop(g);
    drop(bot);
    assert_secret_nowhere(lab, &fake);
}

#[test]
fn deny_self_approval_expiry_cli_and_a_restart() {
    let fake = FakeBotFramework::start();
    let s = setup(&fake, false);
    let lab = &s.lab;
    let bot = BotProcess::start(lab, &s.cfg, "bot");
    s.endpoint.wait_up();
    let su = fake.service_url();
    let token = s.key.sign(&fake.claims());

    // The requester may be an approver, but not of their own request.
    let marker = lab.tmp.path().join("self-approved");
    let id = request(lab, "hermes", &format!("touch {}", marker.display()));
    let post = posted(&fake, &id);
    let press = invoke(
        &su,
        "h1",
        HERMES,
        CONVERSATION,
        &post.activity_id,
        "approve",
        &id,
    );
    let (_, answer) = s.endpoint.send(&token, &press);
    assert!(message(&answer).contains("self_approval"), "{answer}");
    assert!(!marker.exists());
    assert_eq!(state(lab, &id), "pending");
    assert!(lab.audit().iter().any(|r| r["event"] == "error"
        && r["code"] == "self_approval"
        && r["resolver"] == "hermes"));

    // Alice denies it: nothing reaches the agent; the card says so.
    let deny = invoke(
        &su,
        "d1",
        ALICE,
        CONVERSATION,
        &post.activity_id,
        "deny",
        &id,
    );
    let (_, answer) = s.endpoint.send(&token, &deny);
    assert!(
        answer["value"].to_string().contains("Denied by alice"),
        "{answer}"
    );
    let put = fake.wait_for("the denial", |c| {
        c.method == "PUT" && c.activity_id == post.activity_id
    });
    assert!(card_of(&put).to_string().contains("Denied by alice"));
    assert_eq!(state(lab, &id), "denied");
    assert!(!marker.exists());
    assert!(
        lab.agent_audit("srv1").is_empty(),
        "nothing reached the agent"
    );

    // Approved from the CLI meanwhile: the card is marked.
    let marker2 = lab.tmp.path().join("approved-on-the-cli");
    let id2 = request(lab, "assistant", &format!("touch {}", marker2.display()));
    let post2 = posted(&fake, &id2);
    // Approved as `approvals list` showed it (production).
    let listed = Command::new(aiops_bin())
        .arg("--config")
        .arg(lab.config())
        .args(["approvals", "list"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let out = Command::new(aiops_bin())
        .arg("--config")
        .arg(lab.config())
        .args(["approvals", "approve", &id2])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(marker2.exists());
    let put = fake.wait_for("the card closed after a CLI approval", |c| {
        c.method == "PUT" && c.activity_id == post2.activity_id
    });
    assert!(
        card_of(&put).to_string().contains("outside Teams"),
        "{:?}",
        put.body
    );
    assert!(card_of(&put).get("actions").is_none());
    // A press on it now runs nothing.
    std::fs::remove_file(&marker2).unwrap();
    let late = invoke(
        &su,
        "c1",
        ALICE,
        CONVERSATION,
        &post2.activity_id,
        "approve",
        &id2,
    );
    let (_, answer) = s.endpoint.send(&token, &late);
    assert!(message(&answer).contains("already resolved"), "{answer}");
    assert!(!marker2.exists());

    // A request that expires: its card is marked, and a press after it runs nothing.
    // (The bot must post it while it is pending: with a loaded machine a short lifetime can
    // pass first, so the lifetime doubles until it was posted.)
    let marker3 = lab.tmp.path().join("approved-too-late");
    let mut found = None;
    for ttl in [3, 6, 12, 24, 48] {
        lab.edit(
            "config.yml",
            "approval_ttl_secs: 900",
            &format!("approval_ttl_secs: {ttl}"),
        );
        let id3 = request(lab, "expiring", &format!("touch {}", marker3.display()));
        lab.edit(
            "config.yml",
            &format!("approval_ttl_secs: {ttl}"),
            "approval_ttl_secs: 900",
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        let post = loop {
            let post = fake
                .calls()
                .into_iter()
                .find(|c| c.method == "POST" && card_of(c).to_string().contains(&id3));
            if post.is_some() || state(lab, &id3) == "expired" {
                break post;
            }
            assert!(Instant::now() < deadline, "neither posted nor expired");
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Some(post) = post {
            found = Some((id3, post));
            break;
        }
    }
    let (id3, post3) = found.expect("the bot never posted a short-lived request in time");
    let put = fake.wait_for("the expired card", |c| {
        c.method == "PUT" && c.activity_id == post3.activity_id
    });
    assert!(
        card_of(&put).to_string().contains("Expired"),
        "{:?}",
        put.body
    );
    let late = invoke(
        &su,
        "e1",
        ALICE,
        CONVERSATION,
        &post3.activity_id,
        "approve",
        &id3,
    );
    let (_, answer) = s.endpoint.send(&token, &late);
    assert!(
        message(&answer).contains("already resolved or expired"),
        "{answer}"
    );
    assert!(!marker3.exists());
    assert_eq!(state(lab, &id3), "expired");

    // A restart: nothing is posted again, and the cards and seen presses are remembered.
    let marker4 = lab.tmp.path().join("approved-after-a-restart");
    let id4 = request(lab, "assistant", &format!("touch {}", marker4.display()));
    let post4 = posted(&fake, &id4);
    let state_file = lab.dir.join("runtime/teams-approver.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&state_file)
        .unwrap_or_default()
        .contains(&post4.activity_id)
    {
        assert!(Instant::now() < deadline, "the bot never saved its state");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(bot);
    let posts_before = fake.calls().iter().filter(|c| c.method == "POST").count();
    let marker5 = lab.tmp.path().join("requested-while-down");
    let id5 = request(lab, "other", &format!("touch {}", marker5.display()));
    let bot = BotProcess::start(lab, &s.cfg, "bot2");
    s.endpoint.wait_up();
    posted(&fake, &id5);
    std::thread::sleep(Duration::from_millis(2500));
    let posts: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST")
        .collect();
    assert_eq!(
        posts.len(),
        posts_before + 1,
        "a card was posted twice: {posts:?}"
    );
    // A press replayed from before the restart is still refused.
    let (_, answer) = s.endpoint.send(&token, &deny);
    assert!(message(&answer).contains("already handled"), "{answer}");
    // The card posted before the restart still works.
    let press4 = invoke(
        &su,
        "p4",
        ALICE,
        CONVERSATION,
        &post4.activity_id,
        "approve",
        &id4,
    );
    let (_, answer) = s.endpoint.send(&token, &press4);
    assert!(
        answer["value"].to_string().contains("exit code 0"),
        "{answer}"
    );
    assert!(marker4.exists());
    assert_eq!(executed_on_agent(lab), 2, "the CLI approval and this one");
    drop(bot);
    assert!(lab.aiops(&["audit", "verify"]).status.success());
    assert_secret_nowhere(lab, &fake);
}

#[test]
fn the_bot_refuses_a_readable_secret_file_and_never_prints_the_secret() {
    let fake = FakeBotFramework::start();
    let s = setup(&fake, false);
    let lab = &s.lab;
    let cfg = s.cfg.to_str().unwrap();
    let secret = lab.tmp.path().join("teams.secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = lab.aiops(&["approver", "teams", "--teams-config", cfg]);
    assert_eq!(out.status.code(), Some(2));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["error"]["code"], "teams_config");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chmod 600"),
        "{answer}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));

    // A wrong secret: the token endpoint refuses it; the error does not carry it.
    let wrong = "Wr0ng~SecretWrongSecret.WrongSecret_77";
    std::fs::write(&secret, format!("{wrong}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
    let out = lab.aiops(&["approver", "teams", "--teams-config", cfg, "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("teams_api") && text.contains("401") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !text.contains("SecretWrong"),
        "{text}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("SecretWrong"));
    assert_eq!(fake.shared.0.lock().unwrap().bad_token_requests, 1);

    // Trace logging would print request headers: refused before the secret is read.
    std::fs::remove_file(&secret).unwrap();
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = aiops_e2e::run_cmd(
        &aiops_bin(),
        &[
            "--config",
            lab.config().to_str().unwrap(),
            "approver",
            "teams",
            "--teams-config",
            cfg,
            "--check",
        ],
        b"",
        &[("AIOPS_LOG", "trace")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("trace"));

    // Plain HTTP on a non-loopback address is refused.
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    let public = lab.tmp.path().join("approver-teams-public.yml");
    std::fs::write(
        &public,
        text.replace("listen: 127.0.0.1:", "listen: 0.0.0.0:"),
    )
    .unwrap();
    let out = lab.aiops(&[
        "approver",
        "teams",
        "--teams-config",
        public.to_str().unwrap(),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("loopback"));

    // The right secret: --check fetches a token and the signing keys.
    let out = lab.aiops(&["approver", "teams", "--teams-config", cfg, "--check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "ok");
    assert_eq!(answer["app_id"], APP_ID);
    assert_eq!(answer["signing_keys"], 1);
    assert_eq!(fake.shared.0.lock().unwrap().issued.len(), 1);
    assert!(
        lab.audit()
            .iter()
            .all(|r| !r.to_string().contains("SecretWrong"))
    );
}
