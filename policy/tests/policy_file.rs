//! Policy file: unknown keys with file:line, extra rules, per-target
//! overrides, sensitive paths, add-or-tighten only, examples checked at load.

use aiops_policy::{Policy, Risk, UnknownDefault};

#[test]
fn unknown_key_names_file_and_line() {
    let err = Policy::from_yaml("mode: lab\nunknown_default: reject\nbogus: 1\n", "site.yml")
        .unwrap_err();
    let s = err.to_string();
    assert!(s.contains("site.yml:3"), "{s}");
    assert!(s.contains("bogus"), "{s}");
    let err = Policy::from_yaml("allow:\n  - program: foo\n    flagz: -a\n", "a.yml").unwrap_err();
    assert!(err.to_string().contains("a.yml:"), "{err}");
}

#[test]
fn seed_era_keys_keep_their_meaning() {
    let p = Policy::from_yaml("unknown_default: reject\n", "t").unwrap();
    assert_eq!(p.unknown_default(), UnknownDefault::Reject);
    assert_eq!(p.classify("frobnicate").risk, Risk::Rejected);
    assert_eq!(
        p.classify("systemctl restart nginx").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(p.classify("uptime").risk, Risk::AutoAllowed);
    let p = Policy::from_yaml("unknown_default: approval_required\n", "t").unwrap();
    assert_eq!(p.classify("frobnicate").risk, Risk::ApprovalRequired);
    let prod = Policy::from_yaml("mode: production\n", "t").unwrap();
    assert_eq!(prod.classify("frobnicate").risk, Risk::Rejected);
}

#[test]
fn exact_auto_allow_still_works() {
    let p = Policy::from_yaml("auto_allow: ['frobnicate --status']\n", "t").unwrap();
    assert_eq!(p.classify("frobnicate --status").risk, Risk::AutoAllowed);
    assert_eq!(
        p.classify("frobnicate --other").risk,
        Risk::ApprovalRequired
    );
}

#[test]
fn extra_allow_approval_and_forbid_rules() {
    let yaml = "\
allow:
  - program: kubectl
    subcommands: [get, describe]
    flags: '-n|--namespace=any -o|--output=any -A|--all-namespaces'
    operands: any
    should_match: ['kubectl get pods -n web']
    should_not_match: ['kubectl delete pod x']
  - program: ls
    flags: '--frob'
require_approval: ['df -i', 'journalctl --follow']
forbid: ['kubectl delete', 'ls /srv/vault']
";
    let p = Policy::from_yaml(yaml, "t").unwrap();
    assert_eq!(p.classify("kubectl get pods -A").risk, Risk::AutoAllowed);
    assert_eq!(
        p.classify("kubectl apply -f x.yml").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(p.classify("kubectl delete pod web-1").risk, Risk::Forbidden);
    assert_eq!(
        p.classify("sudo kubectl delete pod web-1").risk,
        Risk::Forbidden
    );
    assert_eq!(
        p.classify("echo $(kubectl delete pod x)").risk,
        Risk::Forbidden
    );
    assert_eq!(p.classify("ls --frob").risk, Risk::AutoAllowed);
    assert_eq!(p.classify("ls -la /srv/vault/").risk, Risk::Forbidden);
    assert_eq!(p.classify("df -hi").risk, Risk::ApprovalRequired);
    assert_eq!(
        p.classify("journalctl -f -u x").risk,
        Risk::AutoAllowed,
        "-f is not --follow by pattern"
    );
    assert_eq!(
        p.classify("journalctl --follow -u x").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(
        p.classify("journalctl --foll -u x").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(p.classify("df -h").risk, Risk::AutoAllowed);
}

#[test]
fn per_target_overrides_only_tighten() {
    let yaml = "\
targets:
  db-1:
    unknown_default: reject
    require_approval: ['cat']
    forbid: ['systemctl stop']
    sensitive_paths: ['/srv/pg/*']
";
    let p = Policy::from_yaml(yaml, "t").unwrap();
    assert_eq!(
        p.classify_for(Some("web-1"), "cat /etc/hosts").risk,
        Risk::AutoAllowed
    );
    assert_eq!(
        p.classify_for(Some("db-1"), "cat /etc/hosts").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(
        p.classify_for(Some("db-1"), "systemctl stop postgresql")
            .risk,
        Risk::Forbidden
    );
    assert_eq!(
        p.classify_for(Some("web-1"), "systemctl stop postgresql")
            .risk,
        Risk::ApprovalRequired
    );
    assert_eq!(
        p.classify_for(Some("db-1"), "frobnicate").risk,
        Risk::Rejected
    );
    assert_eq!(
        p.classify_for(Some("db-1"), "head /srv/pg/data").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(
        p.classify_for(Some("web-1"), "head /srv/pg/data").risk,
        Risk::AutoAllowed
    );
    assert_eq!(
        p.classify_for(None, "head /srv/pg/data").risk,
        Risk::AutoAllowed
    );
}

#[test]
fn sensitive_paths_need_approval() {
    let p = Policy::from_yaml("sensitive_paths: ['/srv/app/.env', '*.secret']\n", "t").unwrap();
    assert_eq!(p.classify("cat /srv/app/.env").risk, Risk::ApprovalRequired);
    assert_eq!(
        p.classify("grep x /tmp/a.secret").risk,
        Risk::ApprovalRequired
    );
    assert_eq!(p.classify("cat /srv/app/main.py").risk, Risk::AutoAllowed);
    assert_eq!(
        p.classify("grep -r x /srv/app").risk,
        Risk::ApprovalRequired,
        "recursive read reaches it"
    );
}

#[test]
fn a_file_cannot_make_forbidden_commands_auto() {
    let yaml = "\
auto_allow: ['rm -rf /', 'reboot', 'systemctl reboot']
allow:
  - program: systemctl
    subcommands: [reboot, restart]
  - program: mkfs
    operands: any
";
    let p = Policy::from_yaml(yaml, "t").unwrap();
    for c in ["rm -rf /", "reboot", "systemctl reboot", "mkfs /dev/sda"] {
        assert_eq!(p.classify(c).risk, Risk::Forbidden, "{c}");
    }
}

#[test]
fn broken_examples_fail_the_load() {
    let bad = "allow:\n  - program: frob\n    flags: '-a'\n    should_match: ['frob -b']\n";
    let err = Policy::from_yaml(bad, "t").unwrap_err();
    assert!(err.to_string().contains("frob -b"), "{err}");
    let bad = "allow:\n  - program: frob\n    flags: '-a -b'\n    should_not_match: ['frob -b']\n";
    assert!(Policy::from_yaml(bad, "t").is_err());
    let ok = "allow:\n  - program: frob\n    flags: '-a'\n    should_match: ['frob -a']\n    should_not_match: ['frob -b']\n";
    assert!(Policy::from_yaml(ok, "t").is_ok());
    assert!(Policy::from_yaml("allow:\n  - program: frob\n    flags: 'a=zz'\n", "t").is_err());
}

#[test]
fn digest_tracks_the_effective_policy() {
    let a = Policy::builtin();
    let b = Policy::from_yaml("forbid: ['ls /x']\n", "t").unwrap();
    let c = Policy::from_yaml("forbid: ['ls /y']\n", "t").unwrap();
    assert_ne!(a.digest(), b.digest());
    assert_ne!(b.digest(), c.digest());
    assert_eq!(a.digest(), Policy::builtin().digest());
}
