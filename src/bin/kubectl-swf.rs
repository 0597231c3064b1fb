//! The `kubectl swf` plugin: kubectl runs this binary when it is on `PATH` (src/plugin/).
fn main() {
    // Output to a closed pipe (`kubectl swf completion zsh | head -3`) ends the program quietly,
    // as it does kubectl and other Unix tools, instead of a panic on EPIPE.
    // SAFETY: called before any thread starts; SIG_DFL for SIGPIPE is always a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    swf_operator::plugin::main();
}
