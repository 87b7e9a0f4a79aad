//! How a step number reads wherever a person sees it. A leaf module: the engine's
//! messages, the plugin and the simulator all import it.

/// A step as people read it, `2 of 0–4`: the engine's messages, `kubectl rollgate` and
/// `rollgate simulate` all print it after the word `step`. Steps are numbered from 0, as in
/// `status.currentStep` and `spec.rollout.steps[i]`; the range beside the number says so,
/// and says which step is the last.
pub fn step_of(index: u32, count: usize) -> String {
    match count.checked_sub(1) {
        Some(last) => format!("{index} of 0–{last}"),
        None => format!("{index} of none"),
    }
}
