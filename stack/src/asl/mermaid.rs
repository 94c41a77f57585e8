//! The state machine as a Mermaid flowchart, drawn from the typed definition, so the
//! picture in the README is the workflow that deploys (synth writes it beside the ASL; a
//! test fails when the README's copy is stale).
//!
//! Solid arrows are `Next`, `Default` and Choice rules (labelled with their condition),
//! dotted arrows are `Catch` (labelled with the errors), a dotted loop on a task is its
//! `Retry`. A Map is a box around the graph each item runs.

use super::{Catcher, Condition, Graph, MapMode, Retrier, State, StateMachine, Transition};
use std::fmt::Write as _;

/// The flowchart, top to bottom, ending in a newline.
pub fn to_mermaid(machine: &StateMachine) -> String {
    let mut out = String::from("flowchart TD\n");
    out.push_str("    start((start))\n");
    let _ = writeln!(out, "    start --> {}", id(&machine.graph.start_at));
    write_graph(&machine.graph, 1, &mut out);
    out
}

/// A Mermaid node id: the state name's letters and digits.
fn id(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// A quoted label, with what would end it escaped.
fn label(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "#quot;"))
}

/// The first names and how many more: lists of error names stay short.
fn names(list: &[String]) -> String {
    match list {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] => format!("{first}, {second}"),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    }
}

fn condition(c: &Condition) -> String {
    let var = |v: &str| v.trim_start_matches("$.").to_owned();
    match c {
        Condition::StringEquals(v, s) => format!("{} = {s}", var(v)),
        Condition::NumericGreaterThan(v, n) => format!("{} > {n}", var(v)),
        Condition::BooleanEquals(v, b) => format!("{} is {b}", var(v)),
        Condition::IsPresent(v, true) => format!("{} present", var(v)),
        Condition::IsPresent(v, false) => format!("no {}", var(v)),
        Condition::And(cs) => cs.iter().map(condition).collect::<Vec<_>>().join(" and "),
        Condition::Or(cs) => cs.iter().map(condition).collect::<Vec<_>>().join(" or "),
        Condition::Not(c) => format!("not ({})", condition(c)),
    }
}

fn write_graph(graph: &Graph, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    for (name, state) in &graph.states {
        let node = id(name);
        match state {
            State::Map(m) => {
                let mode = match m.mode {
                    MapMode::Inline => "inline",
                    MapMode::Distributed => "a child execution each",
                };
                let title = format!("{name}: each item of {}, {mode}, {} at once", m.items_path, m.max_concurrency);
                let _ = writeln!(out, "{pad}subgraph {node}[{}]", label(&title));
                let _ = writeln!(out, "{pad}    direction TB");
                let _ = writeln!(out, "{pad}    {node}start(( ))");
                let _ = writeln!(out, "{pad}    {node}start --> {}", id(&m.processor.start_at));
                write_graph(&m.processor, depth + 1, out);
                let _ = writeln!(out, "{pad}end");
            }
            State::Parallel(p) => {
                let _ = writeln!(out, "{pad}subgraph {node}[{}]", label(name));
                for branch in &p.branches {
                    write_graph(branch, depth + 1, out);
                }
                let _ = writeln!(out, "{pad}end");
            }
            State::Choice(_) => {
                let _ = writeln!(out, "{pad}{node}{{{}}}", label(name));
            }
            State::Succeed(_) | State::Fail(_) => {
                let _ = writeln!(out, "{pad}{node}([{}])", label(&format!("{name}: {}", state.type_name())));
            }
            State::Task(_) | State::Pass(_) | State::Wait(_) => {
                let _ = writeln!(out, "{pad}{node}[{}]", label(name));
            }
        }
        write_edges(&node, state, &pad, out);
    }
}

fn write_edges(node: &str, state: &State, pad: &str, out: &mut String) {
    let (transition, retry, catch): (Option<&Transition>, &[Retrier], &[Catcher]) = match state {
        State::Task(t) => (Some(&t.transition), &t.retry, &t.catch),
        State::Map(m) => (Some(&m.transition), &m.retry, &m.catch),
        State::Parallel(p) => (Some(&p.transition), &p.retry, &p.catch),
        State::Pass(p) => (Some(&p.transition), &[], &[]),
        State::Wait(w) => (Some(&w.transition), &[], &[]),
        State::Choice(_) | State::Succeed(_) | State::Fail(_) => (None, &[], &[]),
    };
    if let Some(Transition::Next(next)) = transition {
        let _ = writeln!(out, "{pad}{node} --> {}", id(next));
    }
    if !retry.is_empty() {
        let errors: Vec<String> = retry.iter().map(|r| names(&r.error_equals)).collect();
        let _ = writeln!(out, "{pad}{node} -.->|{}| {node}", label(&format!("retry {}", errors.join("; "))));
    }
    for c in catch {
        let _ =
            writeln!(out, "{pad}{node} -.->|{}| {}", label(&format!("catch {}", names(&c.error_equals))), id(&c.next));
    }
    if let State::Choice(c) = state {
        for rule in &c.choices {
            let _ = writeln!(out, "{pad}{node} -->|{}| {}", label(&condition(&rule.condition)), id(&rule.next));
        }
        if let Some(d) = &c.default {
            let _ = writeln!(out, "{pad}{node} -->|otherwise| {}", id(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::{Choice, ChoiceRule, Io, Pass, Succeed, Task};

    #[test]
    fn states_edges_conditions_and_errors_are_drawn() {
        let task = Task {
            comment: None,
            resource: "arn:aws:states:::lambda:invoke".into(),
            io: Io::default(),
            timeout_seconds: None,
            retry: vec![Retrier::new(&["TransientError"], 30, 4, 2.0)],
            catch: vec![Catcher::new(&["DapError", "SchemaError", "States.ALL"], "$.error", "Failed")],
            transition: Transition::next("Done?"),
        };
        let machine = StateMachine {
            comment: String::new(),
            timeout_seconds: None,
            graph: Graph::new("Call")
                .state("Call", task)
                .state(
                    "Done?",
                    Choice {
                        comment: None,
                        choices: vec![ChoiceRule {
                            condition: Condition::StringEquals("$.status".into(), "in_progress".into()),
                            next: "Call".into(),
                        }],
                        default: Some("Ok".into()),
                    },
                )
                .state("Failed", Pass { comment: None, io: Io::default(), result: None, transition: Transition::End })
                .state("Ok", Succeed::default()),
        };
        let expected = r#"flowchart TD
    start((start))
    start --> Call
    Call["Call"]
    Call --> Done
    Call -.->|"retry TransientError"| Call
    Call -.->|"catch DapError +2"| Failed
    Done{"Done?"}
    Done -->|"status = in_progress"| Call
    Done -->|otherwise| Ok
    Failed["Failed"]
    Ok(["Ok: Succeed"])
"#;
        assert_eq!(to_mermaid(&machine), expected);
    }
}
