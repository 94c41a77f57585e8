//! The state machine as a Mermaid flowchart, drawn from the typed definition, so the
//! picture in xtask/ARCHITECTURE.md is the workflow that deploys (synth writes it beside the ASL; a
//! test fails when its copy is stale).
//!
//! Solid arrows are `Next`, `Default` and Choice rules (labelled with their condition),
//! dotted arrows are `Catch` (labelled with the errors), a dotted loop on a task is its
//! `Retry`. A Map is a box around the graph each item runs. Ids are generated (`s0`, ...),
//! so any state name draws, and every edge comes after every node it names.

use super::{Catcher, Condition, Graph, MapMode, Retrier, State, StateMachine, Transition};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The flowchart, top to bottom, ending in a newline.
pub fn to_mermaid(machine: &StateMachine) -> String {
    let mut ids = HashMap::new();
    number(&machine.graph, &mut ids);
    let mut d = Drawing { ids, nodes: String::new(), edges: Vec::new() };
    d.nodes.push_str("    start((start))\n");
    d.edges.push(format!("    start --> {}", d.id(&machine.graph.start_at)));
    d.graph(&machine.graph, 1);
    // Edges after every node and box, so that each one's id is declared before use.
    let mut out = String::from("flowchart TD\n");
    out.push_str(&d.nodes);
    for edge in &d.edges {
        out.push_str(edge);
        out.push('\n');
    }
    out
}

/// Gives every state, in every nested graph, an id of its own (`s0`, `s1`, ...): state
/// names may hold characters, or be words, that Mermaid ids cannot.
fn number(graph: &Graph, ids: &mut HashMap<String, String>) {
    for (name, state) in &graph.states {
        let next = format!("s{}", ids.len());
        ids.entry(name.clone()).or_insert(next);
        match state {
            State::Map(m) => number(&m.processor, ids),
            State::Parallel(p) => p.branches.iter().for_each(|b| number(b, ids)),
            _ => {}
        }
    }
}

struct Drawing {
    ids: HashMap<String, String>,
    nodes: String,
    edges: Vec<String>,
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
        Condition::NumericEquals(v, n) => format!("{} = {n}", var(v)),
        Condition::BooleanEquals(v, b) => format!("{} is {b}", var(v)),
        Condition::IsPresent(v, true) => format!("{} present", var(v)),
        Condition::IsPresent(v, false) => format!("no {}", var(v)),
        Condition::And(cs) => cs.iter().map(condition).collect::<Vec<_>>().join(" and "),
        Condition::Or(cs) => cs.iter().map(condition).collect::<Vec<_>>().join(" or "),
        Condition::Not(c) => format!("not ({})", condition(c)),
    }
}

impl Drawing {
    /// The id of state `name` (a dangling name, which `check` refuses, gets its own text).
    fn id(&self, name: &str) -> String {
        self.ids.get(name).cloned().unwrap_or_else(|| format!("missing_{}", self.ids.len()))
    }

    fn graph(&mut self, graph: &Graph, depth: usize) {
        let pad = "    ".repeat(depth);
        for (name, state) in &graph.states {
            let node = self.id(name);
            let line = match state {
                State::Map(m) => {
                    let mode = match m.mode {
                        MapMode::Inline => "inline",
                        MapMode::Distributed => "a child execution each",
                    };
                    let title = format!("{name}: each item of {}, {mode}, {} at once", m.items_path, m.max_concurrency);
                    let _ = writeln!(self.nodes, "{pad}subgraph {node}[{}]", label(&title));
                    let _ = writeln!(self.nodes, "{pad}    direction TB");
                    let _ = writeln!(self.nodes, "{pad}    {node}_start(( ))");
                    self.edges.push(format!("    {node}_start --> {}", self.id(&m.processor.start_at)));
                    self.graph(&m.processor, depth + 1);
                    format!("{pad}end")
                }
                State::Parallel(p) => {
                    let _ = writeln!(self.nodes, "{pad}subgraph {node}[{}]", label(name));
                    for branch in &p.branches {
                        self.graph(branch, depth + 1);
                    }
                    format!("{pad}end")
                }
                State::Choice(_) => format!("{pad}{node}{{{}}}", label(name)),
                State::Succeed(_) | State::Fail(_) => {
                    format!("{pad}{node}([{}])", label(&format!("{name}: {}", state.type_name())))
                }
                State::Task(_) | State::Pass(_) | State::Wait(_) => format!("{pad}{node}[{}]", label(name)),
            };
            self.nodes.push_str(&line);
            self.nodes.push('\n');
            self.state_edges(&node, state);
        }
    }

    fn state_edges(&mut self, node: &str, state: &State) {
        let (transition, retry, catch): (Option<&Transition>, &[Retrier], &[Catcher]) = match state {
            State::Task(t) => (Some(&t.transition), &t.retry, &t.catch),
            State::Map(m) => (Some(&m.transition), &m.retry, &m.catch),
            State::Parallel(p) => (Some(&p.transition), &p.retry, &p.catch),
            State::Pass(p) => (Some(&p.transition), &[], &[]),
            State::Wait(w) => (Some(&w.transition), &[], &[]),
            State::Choice(_) | State::Succeed(_) | State::Fail(_) => (None, &[], &[]),
        };
        if let Some(Transition::Next(next)) = transition {
            self.edges.push(format!("    {node} --> {}", self.id(next)));
        }
        if !retry.is_empty() {
            let errors: Vec<String> = retry.iter().map(|r| names(&r.error_equals)).collect();
            self.edges.push(format!("    {node} -.->|{}| {node}", label(&format!("retry {}", errors.join("; ")))));
        }
        for c in catch {
            let text = label(&format!("catch {}", names(&c.error_equals)));
            self.edges.push(format!("    {node} -.->|{text}| {}", self.id(&c.next)));
        }
        if let State::Choice(c) = state {
            for rule in &c.choices {
                self.edges.push(format!(
                    "    {node} -->|{}| {}",
                    label(&condition(&rule.condition)),
                    self.id(&rule.next)
                ));
            }
            if let Some(d) = &c.default {
                self.edges.push(format!("    {node} -->|otherwise| {}", self.id(d)));
            }
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
            catch: vec![Catcher::new(&["DapError", "SchemaError", "States.ALL"], "$.error", "end")],
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
                .state("end", Pass { comment: None, io: Io::default(), result: None, transition: Transition::End })
                .state("Ok", Succeed::default()),
        };
        let expected = r#"flowchart TD
    start((start))
    s0["Call"]
    s1{"Done?"}
    s2["end"]
    s3(["Ok: Succeed"])
    start --> s0
    s0 --> s1
    s0 -.->|"retry TransientError"| s0
    s0 -.->|"catch DapError +2"| s2
    s1 -->|"status = in_progress"| s0
    s1 -->|otherwise| s3
"#;
        assert_eq!(to_mermaid(&machine), expected);
    }
}
