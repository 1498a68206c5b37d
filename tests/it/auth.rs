//! A queen with `--token`: the right token registers, a wrong one is refused and says so.

use test_support::JsonClient;

use crate::fleet::{DEADLINE, Queen, STARTUP, hive, slot, worker};

const TOKEN: &str = "right-token-5f2a";
const WRONG: &str = "wrong-token-91c7";

#[tokio::test]
async fn only_senders_with_the_right_token_register_and_the_others_say_why() {
    let _slot = slot().await;
    let queen = Queen::start(&["--token", TOKEN]).await;
    let url = queen.url();
    let _hive = hive(&url, "hive-t").args(["--token", TOKEN]).spawn();
    let _trusted = worker(&url, "trusted").args(["--token", TOKEN]).spawn();
    let intruder = worker(&url, "intruder")
        .args(["--token", WRONG])
        .env("RUST_LOG", "info,heartbeat_sender=debug")
        .spawn();
    let anonymous = worker(&url, "anonymous").spawn();

    queen
        .wait_all_available(&["hive-t"], &["trusted"], STARTUP)
        .await;

    for refused in [&intruder, &anonymous] {
        let line = refused
            .wait_for_line("queen rejected heartbeat", STARTUP)
            .await;
        assert!(line.contains("401"), "{line}");
        assert!(line.to_lowercase().contains("unauthorized"), "{line}");
        assert!(
            line.contains("--token"),
            "the line points at the fix: {line}"
        );
    }
    intruder
        .wait_for_count("heartbeat refused again", 3, DEADLINE)
        .await;
    assert_eq!(
        intruder.count_containing("queen rejected heartbeat"),
        1,
        "{}",
        intruder.output()
    );
    assert!(
        !intruder.output().contains(WRONG),
        "tokens are never logged"
    );
    assert!(
        !queen.daemon.output().contains(WRONG),
        "tokens are never logged"
    );

    for id in ["intruder", "anonymous"] {
        let (status, _) = queen.api.get(&format!("/v1/workers/{id}")).await.unwrap();
        assert_eq!(status, 404, "{id} must not be registered");
    }
    let (status, _) = JsonClient::new(url).get("/v1/workers").await.unwrap();
    assert_eq!(status, 401, "reading the registry needs the token too");
}
