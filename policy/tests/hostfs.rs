//! The agent's re-check against the real file system: paths are resolved
//! through a [`HostFs`] (realpath, tree walks) just before exec.

use aiops_policy::{HostFs, Policy, Risk, Walk};

/// A file system with a few links: `/srv/app/link -> /etc/shadow`,
/// `/var/www -> /` (a directory link), and `/etc/nginx` holding a key.
struct Fake;

impl HostFs for Fake {
    fn realpath(&self, path: &str) -> Option<String> {
        Some(match path {
            "/srv/app/link" => "/etc/shadow".into(),
            p if p.starts_with("/var/www/") => p["/var/www".len()..].to_string(),
            "/var/www" => "/".into(),
            p => p.to_string(),
        })
    }
    fn walk(&self, dir: &str, _limit: usize) -> Walk {
        match dir {
            "/etc/nginx" => Walk::Entries {
                entries: vec![
                    "/etc/nginx/nginx.conf".into(),
                    "/etc/nginx/ssl/site.key".into(),
                ],
                complete: true,
            },
            "/big" => Walk::TooLarge,
            "/etc/secretless" => Walk::Entries {
                entries: vec!["/etc/secretless/a.conf".into()],
                complete: false,
            },
            _ => Walk::Entries {
                entries: vec![],
                complete: true,
            },
        }
    }
    fn writable_dir(&self, path: &str) -> Option<String> {
        ["/tmp/", "/var/log/aiops-agent/", "/home/alice/"]
            .iter()
            .find(|d| path.starts_with(*d))
            .map(|d| format!("{d} is writable by another account"))
    }
}

#[test]
fn a_privileged_read_through_a_directory_another_account_can_change_needs_approval() {
    let p = Policy::builtin();
    for cmd in [
        "sudo cat /tmp/x",
        "sudo wc -c /var/log/aiops-agent/x",
        "sudo cat < /tmp/x",
        "cd /tmp && sudo ls",
        "cd /var/log/aiops-agent && sudo cat x",
        "sudo tail -n 5 /home/alice/app.log",
    ] {
        assert_eq!(p.classify(cmd).risk, Risk::AutoAllowed, "{cmd} as text");
        let d = p.classify_on_host(None, cmd, &Fake);
        assert_eq!(d.risk, Risk::ApprovalRequired, "{cmd}: {:?}", d.reasons);
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("another account can redirect")),
            "{cmd}: {:?}",
            d.reasons
        );
    }
    // The same reads unprivileged are the command account's own business, and privileged
    // reads of root's directories stay automatic.
    for cmd in [
        "cat /tmp/x",
        "wc -c < /tmp/x",
        "cd /tmp && ls",
        "sudo cat /var/log/syslog",
        "sudo ls /root",
    ] {
        let d = p.classify_on_host(None, cmd, &Fake);
        assert_eq!(d.risk, Risk::AutoAllowed, "{cmd}: {:?}", d.reasons);
    }
}

#[test]
fn a_symbolic_link_to_a_secret_is_not_automatic_on_the_host() {
    let p = Policy::builtin();
    for cmd in [
        "cat /srv/app/link",
        "head -n 1 /srv/app/link",
        "cd /var/www && cat etc/shadow",
        "cat /var/www/etc/shadow",
    ] {
        // The controller cannot know; the agent's re-check does.
        let d = p.classify_on_host(None, cmd, &Fake);
        assert_eq!(d.risk, Risk::ApprovalRequired, "{cmd:?}: {:?}", d.reasons);
        assert_eq!(d.plan, p.classify(cmd).plan, "{cmd:?}: same plan");
    }
    assert_eq!(p.classify("cat /srv/app/link").risk, Risk::AutoAllowed);
    assert_eq!(
        p.classify_on_host(None, "cat /srv/app/other", &Fake).risk,
        Risk::AutoAllowed
    );
}

#[test]
fn recursive_reads_are_walked_on_the_host() {
    let p = Policy::builtin();
    let d = p.classify_on_host(None, "grep -r server_name /etc/nginx", &Fake);
    assert_eq!(d.risk, Risk::ApprovalRequired, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains("site.key")),
        "{:?}",
        d.reasons
    );
    assert_eq!(
        p.classify_on_host(None, "grep -r x /big", &Fake).risk,
        Risk::ApprovalRequired
    );
    // Unreadable parts matter only when the stage runs as root.
    assert_eq!(
        p.classify_on_host(None, "grep -r x /etc/secretless", &Fake)
            .risk,
        Risk::AutoAllowed
    );
    assert_eq!(
        p.classify_on_host(None, "sudo grep -r x /etc/secretless", &Fake)
            .risk,
        Risk::ApprovalRequired
    );
    assert_eq!(
        p.classify_on_host(None, "grep -r x /var/log/nginx", &Fake)
            .risk,
        Risk::AutoAllowed
    );
}
