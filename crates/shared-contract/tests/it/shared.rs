//! Property tests of the shared types: ids, health, transitions and timestamps.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared_contract::{Health, Id, Transition, is_valid_id, parse_timestamp};

use crate::hostile::{arb_json, arb_string, arb_timestamp_text};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn an_id_decodes_exactly_when_it_is_valid(s in arb_string()) {
        let decoded = serde_json::from_value::<Id>(Value::String(s.clone()));
        prop_assert_eq!(decoded.is_ok(), is_valid_id(&s));
        if let Ok(id) = decoded {
            prop_assert_eq!(serde_json::to_value(&id).unwrap(), Value::String(s));
        }
    }

    #[test]
    fn arbitrary_json_as_health_never_panics_and_round_trips(value in arb_json()) {
        if let Ok(health) = serde_json::from_value::<Health>(value) {
            let again: Health = serde_json::from_value(serde_json::to_value(&health).unwrap()).unwrap();
            prop_assert_eq!(again, health);
        }
    }

    #[test]
    fn arbitrary_json_as_transition_never_panics_and_round_trips(value in arb_json()) {
        if let Ok(t) = serde_json::from_value::<Transition>(value) {
            let again: Transition = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
            prop_assert_eq!(again, t);
        }
    }

    #[test]
    fn accepted_timestamps_are_written_back_as_rfc3339(s in arb_timestamp_text()) {
        if let Ok(t) = parse_timestamp(&s) {
            let text = serde_json::to_value(t).unwrap();
            let text = text.as_str().unwrap();
            prop_assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{s} -> {text}");
            prop_assert_eq!(parse_timestamp(text), Ok(t));
        }
    }
}

#[test]
fn health_reason_is_optional_and_status_is_required() {
    let h: Health = serde_json::from_value(json!({"status": "unhealthy"})).unwrap();
    assert_eq!(h.reason(), Some(""));
    assert!(serde_json::from_value::<Health>(json!({"reason": "x"})).is_err());
    assert!(serde_json::from_value::<Health>(json!("healthy")).is_err());
}
