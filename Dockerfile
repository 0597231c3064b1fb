# Static, non-root image. Build the binary first (no Docker needed for that):
#   rustup target add x86_64-unknown-linux-musl
#   cargo build --release --locked --target x86_64-unknown-linux-musl
# then: docker build -t swf-operator:latest .
FROM scratch
COPY target/x86_64-unknown-linux-musl/release/swf-operator /swf-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/swf-operator"]
