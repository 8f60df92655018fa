//! `acme status`: a gateway's automatic (ACME) certificates, from its control API's
//! `GET /tyk/acme`, as a table or as the gateway's JSON.

use gateway_runtime::wire::{AcmeNameStatus, AcmeStatus};
use http::{Method, StatusCode};

use crate::cli::AcmeStatusArgs;
use crate::gateway::{failure, parse};
use crate::report::printable;
use crate::store::{Outcome, gateway_target, rfc3339, table, to_json};

/// Asks the gateway and prints each managed name.
pub(crate) async fn run(args: AcmeStatusArgs) -> Result<Outcome, String> {
    let gateway = gateway_target(&args.target, "acme status").await?;
    let (status, body) = gateway.call(Method::GET, "/tyk/acme", Vec::new()).await?;
    if status != StatusCode::OK {
        return Err(failure(status, &body));
    }
    let answer: AcmeStatus = parse(&body, "the ACME status")?;
    Ok(Outcome::ok(if args.json {
        to_json(&answer)?
    } else {
        status_table(&answer)
    }))
}

/// The names as a table, then the counts since the gateway started.
fn status_table(status: &AcmeStatus) -> String {
    let rows: Vec<[String; 6]> = status.names.iter().map(row).collect();
    let mut text: String = table(
        &[
            "NAME",
            "CERTIFICATE",
            "EXPIRES",
            "NEXT RENEWAL",
            "FAILURES",
            "LAST ERROR",
        ],
        &rows,
    )
    .into_iter()
    .map(|(line, _)| line)
    .collect();
    let local: Vec<String> = status
        .names
        .iter()
        .filter(|n| n.local_only)
        .map(|n| printable(&n.name))
        .collect();
    if !local.is_empty() {
        text.push_str(&format!(
            "the gateway could not read the fleet's record (its coordinator did not answer); its own view of: {}\n",
            local.join(", ")
        ));
    }
    text.push_str(&format!(
        "since start (this gateway): issued {}, renewed {}, failed {}\n",
        status.issued, status.renewed, status.failed
    ));
    text
}

fn row(name: &AcmeNameStatus) -> [String; 6] {
    let time = |at: Option<time::OffsetDateTime>| at.map_or_else(|| "-".to_owned(), rfc3339);
    [
        printable(&name.name),
        name.cert_id
            .as_deref()
            .map_or_else(|| "-".to_owned(), printable),
        time(name.not_after),
        match name.next_renewal {
            None if name.cert_id.is_none() => "now".to_owned(),
            at => time(at),
        },
        name.failures.to_string(),
        name.last_error
            .as_deref()
            .map_or_else(|| "-".to_owned(), printable),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_name_and_the_counts() {
        let status: AcmeStatus = serde_json::from_value(serde_json::json!({
            "names": [
                {"name": "a.example", "cert_id": "abc", "not_after": "2027-03-01T00:00:00Z",
                 "next_renewal": "2027-01-30T00:00:00Z", "failures": 0, "last_error": null},
                {"name": "b.example", "cert_id": null, "not_after": null,
                 "next_renewal": null, "failures": 2, "last_error": "the CA said\nno",
                 "local_only": true},
            ],
            "issued": 1, "renewed": 0, "failed": 2,
        }))
        .unwrap();
        let text = status_table(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].starts_with("a.example")
                && lines[1].contains("abc")
                && lines[1].contains("2027-03-01T00:00:00Z")
                && lines[1].contains("2027-01-30T00:00:00Z")
                && lines[1].ends_with(" -"),
            "{text}"
        );
        assert!(lines[2].contains(" now "), "{text}");
        assert!(lines[2].ends_with("the CA said\\nno"), "escaped: {text}");
        assert_eq!(
            lines[3],
            "the gateway could not read the fleet's record (its coordinator did not answer); its own view of: b.example"
        );
        assert_eq!(
            lines[4],
            "since start (this gateway): issued 1, renewed 0, failed 2"
        );
    }
}
