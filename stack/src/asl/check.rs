//! Checks a [`StateMachine`] the way Step Functions would reject it at deploy time, but
//! before the template is written, with the state named in every message.

use super::{Graph, State, StateMachine, Transition};
use std::collections::{BTreeSet, HashSet};

/// Everything wrong with a definition.
#[derive(Debug, thiserror::Error)]
#[error("the state machine definition is not valid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct AslError(pub Vec<String>);

const MAX_NAME_LEN: usize = 80;

pub fn check(machine: &StateMachine) -> Result<(), AslError> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    check_graph(&machine.graph, "the state machine", &mut seen, &mut problems);
    if machine.timeout_seconds == Some(0) {
        problems.push("TimeoutSeconds must be positive".into());
    }
    if problems.is_empty() { Ok(()) } else { Err(AslError(problems)) }
}

/// The names a state may go to next, with the field that names them.
fn successors(state: &State) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    let transition = match state {
        State::Task(t) => Some(&t.transition),
        State::Map(m) => Some(&m.transition),
        State::Parallel(p) => Some(&p.transition),
        State::Pass(p) => Some(&p.transition),
        State::Wait(w) => Some(&w.transition),
        State::Choice(_) | State::Succeed(_) | State::Fail(_) => None,
    };
    if let Some(Transition::Next(n)) = transition {
        out.push(("Next", n.as_str()));
    }
    let catchers = match state {
        State::Task(t) => &t.catch[..],
        State::Map(m) => &m.catch[..],
        State::Parallel(p) => &p.catch[..],
        _ => &[],
    };
    out.extend(catchers.iter().map(|c| ("Catch.Next", c.next.as_str())));
    if let State::Choice(c) = state {
        out.extend(c.choices.iter().map(|r| ("Choices.Next", r.next.as_str())));
        if let Some(d) = &c.default {
            out.push(("Default", d.as_str()));
        }
    }
    out
}

fn ends(state: &State) -> bool {
    match state {
        State::Succeed(_) | State::Fail(_) => true,
        State::Task(t) => t.transition == Transition::End,
        State::Map(m) => m.transition == Transition::End,
        State::Parallel(p) => p.transition == Transition::End,
        State::Pass(p) => p.transition == Transition::End,
        State::Wait(w) => w.transition == Transition::End,
        State::Choice(_) => false,
    }
}

fn check_graph(graph: &Graph, scope: &str, seen: &mut HashSet<String>, problems: &mut Vec<String>) {
    if !graph.states.contains_key(&graph.start_at) {
        problems.push(format!("{scope}: StartAt `{}` is not a state", graph.start_at));
    }
    for (name, state) in &graph.states {
        if !seen.insert(name.clone()) {
            problems
                .push(format!("state `{name}` is defined more than once; names must be unique in the whole machine"));
        }
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            problems.push(format!("state `{name}`: names must be 1 to {MAX_NAME_LEN} characters"));
        }
        for (field, target) in successors(state) {
            if !graph.states.contains_key(target) {
                problems.push(format!("state `{name}`: {field} `{target}` is not a state of {scope}"));
            }
        }
        check_state(name, state, seen, problems);
    }

    // Reachability from StartAt, following every transition a state can take.
    let mut reached = BTreeSet::new();
    let mut stack = vec![graph.start_at.as_str()];
    while let Some(name) = stack.pop() {
        if !reached.insert(name) {
            continue;
        }
        if let Some(state) = graph.states.get(name) {
            stack.extend(successors(state).into_iter().map(|(_, t)| t));
        }
    }
    for name in graph.states.keys() {
        if !reached.contains(name.as_str()) {
            problems.push(format!("state `{name}` cannot be reached from StartAt `{}` in {scope}", graph.start_at));
        }
    }
    if !graph.states.values().any(ends) {
        problems.push(format!("{scope} has no terminal state (End, Succeed or Fail), so it can never finish"));
    }
}

fn check_state(name: &str, state: &State, seen: &mut HashSet<String>, problems: &mut Vec<String>) {
    let (retry, catch) = match state {
        State::Task(t) => (&t.retry[..], &t.catch[..]),
        State::Map(m) => (&m.retry[..], &m.catch[..]),
        State::Parallel(p) => (&p.retry[..], &p.catch[..]),
        _ => (&[][..], &[][..]),
    };
    let lists =
        retry.iter().map(|r| ("Retry", &r.error_equals)).chain(catch.iter().map(|c| ("Catch", &c.error_equals)));
    let mut all_seen_in = BTreeSet::new();
    for (field, errors) in lists {
        if errors.is_empty() {
            problems.push(format!("state `{name}`: a {field} entry has an empty ErrorEquals"));
        }
        if errors.iter().any(|e| e == "States.ALL") && errors.len() > 1 {
            problems.push(format!("state `{name}`: States.ALL must stand alone in its {field} ErrorEquals"));
        }
        if all_seen_in.contains(field) {
            problems.push(format!("state `{name}`: a {field} entry follows the States.ALL one and is never used"));
        }
        if errors.iter().any(|e| e == "States.ALL") {
            all_seen_in.insert(field);
        }
    }
    for r in retry {
        if r.backoff_rate < 1.0 {
            problems.push(format!("state `{name}`: BackoffRate must be at least 1.0"));
        }
        if r.interval_seconds == 0 {
            problems.push(format!("state `{name}`: IntervalSeconds must be positive"));
        }
    }
    match state {
        State::Task(t) => {
            if t.resource.is_empty() {
                problems.push(format!("state `{name}`: Resource is empty"));
            }
            if t.timeout_seconds == Some(0) {
                problems.push(format!("state `{name}`: TimeoutSeconds must be positive"));
            }
        }
        State::Map(m) => {
            if !m.items_path.starts_with('$') {
                problems.push(format!("state `{name}`: ItemsPath `{}` is not a JSONPath", m.items_path));
            }
            if m.result_writer.is_some() && m.mode != super::MapMode::Distributed {
                problems.push(format!("state `{name}`: only a Distributed Map has a ResultWriter"));
            }
            if m.tolerated_failure_count.is_some() && m.mode != super::MapMode::Distributed {
                problems.push(format!("state `{name}`: only a Distributed Map tolerates failures"));
            }
            if m.tolerated_failure_count == Some(0) {
                problems.push(format!("state `{name}`: a ToleratedFailureCount of 0 is the default; leave it out"));
            }
            check_graph(&m.processor, &format!("the ItemProcessor of `{name}`"), seen, problems);
        }
        State::Parallel(p) => {
            if p.branches.is_empty() {
                problems.push(format!("state `{name}`: a Parallel state needs at least one branch"));
            }
            for (i, b) in p.branches.iter().enumerate() {
                check_graph(b, &format!("branch {i} of `{name}`"), seen, problems);
            }
        }
        State::Choice(c) if c.choices.is_empty() => {
            problems.push(format!("state `{name}`: a Choice state needs at least one rule"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::*;

    fn pass(next: &str) -> Pass {
        Pass { comment: None, io: Io::default(), result: None, transition: Transition::next(next) }
    }

    fn machine(graph: Graph) -> StateMachine {
        StateMachine { comment: "t".into(), timeout_seconds: None, graph }
    }

    #[test]
    fn a_well_formed_machine_passes() {
        let g = Graph::new("A").state("A", pass("B")).state("B", Succeed::default());
        check(&machine(g)).unwrap();
    }

    #[test]
    fn dangling_next_is_named() {
        let g = Graph::new("A").state("A", pass("Nowhere"));
        let err = check(&machine(g)).unwrap_err().to_string();
        assert!(err.contains("state `A`: Next `Nowhere` is not a state"), "{err}");
        assert!(err.contains("no terminal state"), "{err}");
    }

    #[test]
    fn unreachable_and_duplicate_states_are_named() {
        let inner = Graph::new("A").state("A", Succeed::default());
        let map = MapState {
            comment: None,
            items_path: "$.items".into(),
            item_selector: None,
            max_concurrency: 1,
            mode: MapMode::Inline,
            processor: inner,
            result_writer: Some(Box::new(ResultWriter { bucket: "b".into(), prefix: "runs".into() })),
            tolerated_failure_count: Some(0),
            io: Io::default(),
            retry: vec![],
            catch: vec![],
            transition: Transition::End,
        };
        let g = Graph::new("M").state("M", map).state("A", Succeed::default()).state("Lost", pass("M"));
        let err = check(&machine(g)).unwrap_err().to_string();
        assert!(err.contains("state `A` is defined more than once"), "{err}");
        assert!(err.contains("state `Lost` cannot be reached"), "{err}");
        assert!(err.contains("state `M`: only a Distributed Map has a ResultWriter"), "{err}");
        assert!(err.contains("state `M`: only a Distributed Map tolerates failures"), "{err}");
        assert!(err.contains("a ToleratedFailureCount of 0 is the default"), "{err}");
    }

    #[test]
    fn states_all_must_be_last_and_alone() {
        let task = Task {
            comment: None,
            resource: "arn:aws:states:::lambda:invoke".into(),
            io: Io::default(),
            timeout_seconds: None,
            retry: vec![Retrier::new(&["States.ALL", "X"], 1, 2, 2.0), Retrier::new(&["Y"], 1, 2, 2.0)],
            catch: vec![],
            transition: Transition::End,
        };
        let err = check(&machine(Graph::new("T").state("T", task))).unwrap_err().to_string();
        assert!(err.contains("must stand alone"), "{err}");
        assert!(err.contains("follows the States.ALL"), "{err}");
    }
}
