//! The exact requests of `Flags::watch_configmap`, against a scripted API server on
//! 127.0.0.1: one `get`, then watches of that one name from the version it returned. Never a
//! `list`, so a Role with `get` and `watch` on the ConfigMap is enough.
//!
//! The script walks the loop through every case it handles: a change, a bookmark, a closed
//! stream (resume from the last version), `410 Gone` as a watch event and as a response (read
//! the object again), a deletion and a re-creation, a broken document, a `403` (back off and
//! resume) and a ConfigMap that is missing when read again (watch from "now").
#![cfg(feature = "kube")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rollgate_sdk::Flags;

const PATH: &str = "/api/v1/namespaces/shop/configmaps";

fn document(enabled: bool, extra: bool) -> String {
    let extra = if extra {
        r#","extra":{"key":"extra","enabled":true,"percent":100}"#
    } else {
        ""
    };
    format!(
        r#"{{"schemaVersion":1,"flags":{{"kill-switch":{{"key":"kill-switch","enabled":{enabled},"percent":100}}{extra}}}}}"#
    )
}

fn configmap(version: &str, flags: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "rollgate-flags", "namespace": "shop", "resourceVersion": version},
        "data": {"flags.json": flags},
    })
}

fn status(code: u16, reason: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("scripted {reason}"), "reason": reason, "code": code,
    })
}

fn event(kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({"type": kind, "object": object}).to_string()
}

/// One scripted answer: a status code and body lines; `gate` waits for the test's go-ahead
/// before answering, `hold` keeps the stream open.
#[derive(Default)]
struct Answer {
    code: u16,
    lines: Vec<String>,
    gate: bool,
    hold: bool,
}

fn answer(code: u16, body: serde_json::Value) -> Answer {
    Answer {
        code,
        lines: vec![body.to_string()],
        ..Answer::default()
    }
}

fn stream(lines: Vec<String>) -> Answer {
    Answer {
        code: 200,
        lines,
        ..Answer::default()
    }
}

/// Reads one request head and returns its target (`/api/...?...`).
fn read_target(connection: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(connection);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let target = request_line.split_whitespace().nth(1)?.to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            return Some(target);
        }
    }
}

/// Serves `script` one connection per request (`Connection: close`), recording targets.
fn serve(
    listener: TcpListener,
    script: Vec<Answer>,
    log: Arc<Mutex<Vec<String>>>,
    go: mpsc::Receiver<()>,
) {
    for answer in script {
        let Ok((mut connection, _)) = listener.accept() else {
            return;
        };
        let Some(target) = read_target(&connection) else {
            return;
        };
        log.lock().unwrap().push(target);
        if answer.gate && go.recv().is_err() {
            return;
        }
        let reason = match answer.code {
            200 => "OK",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Gone",
        };
        let mut response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            answer.code
        );
        for line in &answer.lines {
            response.push_str(line);
            response.push('\n');
        }
        if connection.write_all(response.as_bytes()).is_err() {
            return;
        }
        if answer.hold {
            // Until the client goes away (the last `Flags` clone is dropped).
            let _ = std::io::copy(&mut connection, &mut std::io::sink());
        }
    }
}

fn watch_target(version: &str) -> String {
    format!(
        "{PATH}?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3Drollgate-flags\
         &allowWatchBookmarks=true&resourceVersion={version}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_then_watch_one_name_and_never_list() {
    let (a, b, c, d) = (
        document(true, false),
        document(false, false),
        document(true, true),
        document(false, true),
    );
    let script = vec![
        // `watch_configmap`'s first read.
        answer(200, configmap("10", &a)),
        // A change, a bookmark, then the server closes the stream.
        Answer {
            gate: true,
            ..stream(vec![
                event("MODIFIED", configmap("11", &b)),
                event(
                    "BOOKMARK",
                    serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1",
                        "metadata": {"resourceVersion": "15"}}),
                ),
            ])
        },
        // Resumed from the bookmark: the version has left the window.
        stream(vec![event("ERROR", status(410, "Expired"))]),
        // Read again; it changed in between.
        answer(200, configmap("20", &c)),
        // Deleted, re-created with a broken document, then fixed.
        stream(vec![
            event("DELETED", configmap("21", &c)),
            event("ADDED", configmap("22", "{broken")),
            event("MODIFIED", configmap("23", &d)),
        ]),
        // Refused (RBAC changed under the workload): back off, resume from 23.
        answer(403, status(403, "Forbidden")),
        // 410 as the response itself.
        answer(410, status(410, "Gone")),
        // Gone when read again: counted, then awaited by a watch from "now".
        answer(404, status(404, "NotFound")),
        Answer {
            hold: true,
            ..stream(vec![event("ADDED", configmap("30", &d))])
        },
    ];
    let expected = [
        format!("{PATH}/rollgate-flags"),
        watch_target("10"),
        watch_target("15"),
        format!("{PATH}/rollgate-flags"),
        watch_target("20"),
        watch_target("23"),
        watch_target("23"),
        format!("{PATH}/rollgate-flags"),
        watch_target(""),
    ];

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let server_log = Arc::clone(&log);
    let (go, gate) = mpsc::channel();
    std::thread::spawn(move || serve(listener, script, server_log, gate));

    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let flags = Flags::watch_configmap(client, "shop", "rollgate-flags")
        .await
        .expect("first get");
    let changes = flags.subscribe();
    go.send(()).unwrap();

    let started = Instant::now();
    while log.lock().unwrap().len() < expected.len() || flags.last_reload_error().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "requests so far: {:#?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert_eq!(*log.lock().unwrap(), expected);
    let generations: Vec<u64> = changes.try_iter().map(|change| change.generation).collect();
    // B (watch), C (re-read after 410), D (after the re-creation); the last ADDED is D again.
    assert_eq!(generations, [2, 3, 4]);
    assert!(!flags.is_enabled("kill-switch", None));
    assert!(flags.is_enabled("extra", None));
    // The deletion, the broken document and the missing ConfigMap on the re-read.
    assert_eq!(flags.reload_errors(), 3);
    assert!(flags.last_reload_error().is_none(), "healthy again");
}
