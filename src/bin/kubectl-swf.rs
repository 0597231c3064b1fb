//! The `kubectl swf` plugin: kubectl runs this binary when it is on `PATH` (src/plugin/).
fn main() {
    swf_operator::plugin::main();
}
