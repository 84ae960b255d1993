//! Conversions between the wire plan and the shared [`Plan`] (`aiops-types`).

use crate::agent::v1 as pb;
use aiops_types::{Connector, Pipeline, Plan, Redirect, Stage};

/// Converts the wire plan to the shared plan.
pub fn from_proto(plan: Option<&pb::Plan>) -> Plan {
    let Some(plan) = plan else {
        return Plan::default();
    };
    Plan {
        shell: plan.shell,
        pipelines: plan
            .pipelines
            .iter()
            .map(|p| Pipeline {
                connector: match pb::Connector::try_from(p.connector) {
                    Ok(pb::Connector::And) => Connector::And,
                    Ok(pb::Connector::Or) => Connector::Or,
                    _ => Connector::Seq,
                },
                stages: p
                    .stages
                    .iter()
                    .map(|s| Stage {
                        argv: s.argv.clone(),
                        privileged: s.privileged,
                        redirects: s
                            .redirects
                            .iter()
                            .map(|r| match pb::redirect::Kind::try_from(r.kind) {
                                Ok(pb::redirect::Kind::StderrToStdout) => Redirect::StderrToStdout,
                                Ok(pb::redirect::Kind::StdoutToNull) => Redirect::StdoutToNull,
                                Ok(pb::redirect::Kind::StderrToNull) => Redirect::StderrToNull,
                                // Unknown kinds become a file that cannot match any derived plan.
                                Ok(pb::redirect::Kind::StdinFromFile) => {
                                    Redirect::StdinFromFile(r.path.clone())
                                }
                                _ => Redirect::StdinFromFile(format!("\0invalid:{}", r.kind)),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Converts the shared plan to the wire plan.
pub fn to_proto(plan: &Plan) -> pb::Plan {
    pb::Plan {
        shell: plan.shell,
        pipelines: plan
            .pipelines
            .iter()
            .map(|p| pb::Pipeline {
                connector: match p.connector {
                    Connector::Seq => pb::Connector::Seq,
                    Connector::And => pb::Connector::And,
                    Connector::Or => pb::Connector::Or,
                } as i32,
                stages: p
                    .stages
                    .iter()
                    .map(|s| pb::Stage {
                        argv: s.argv.clone(),
                        privileged: s.privileged,
                        redirects: s
                            .redirects
                            .iter()
                            .map(|r| {
                                let (kind, path) = match r {
                                    Redirect::StderrToStdout => {
                                        (pb::redirect::Kind::StderrToStdout, String::new())
                                    }
                                    Redirect::StdoutToNull => {
                                        (pb::redirect::Kind::StdoutToNull, String::new())
                                    }
                                    Redirect::StderrToNull => {
                                        (pb::redirect::Kind::StderrToNull, String::new())
                                    }
                                    Redirect::StdinFromFile(p) => {
                                        (pb::redirect::Kind::StdinFromFile, p.clone())
                                    }
                                };
                                pb::Redirect {
                                    kind: kind as i32,
                                    path,
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
