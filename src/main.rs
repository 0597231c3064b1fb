use clap::Parser;

fn main() -> anyhow::Result<()> {
    swf_operator::cli::Cli::parse().run()
}
