use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};

use super::*;

fn test_pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos");
    let mut compiler = protox::Compiler::new([tests, root]).unwrap();
    compiler.include_imports(true);
    compiler.open_files(["rules_test.proto"]).unwrap();
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).unwrap()
}

/// A pool without the message that uses CEL.
fn validator(pool: &DescriptorPool) -> Validator {
    match Validator::new(pool) {
        Err(mut errors) => {
            errors.sort_by(|a, b| a.element.cmp(&b.element));
            assert_eq!(errors.len(), 2, "{errors:?}");
            assert_eq!(errors[0].element, "meshwork.test.v1.WithCel.id");
            assert!(errors[0].problem.contains("CEL"), "{}", errors[0]);
            assert_eq!(errors[1].element, "meshwork.test.v1.WithPerlClass.id");
            assert!(errors[1].problem.contains("Perl class"), "{}", errors[1]);
            let mut plans = rules::compile_lenient(pool);
            plans.remove("meshwork.test.v1.WithCel");
            Validator {
                plans,
                inputs: ["meshwork.test.v1.Everything".to_owned()].into(),
            }
        }
        Ok(_) => panic!("CEL must be refused"),
    }
}

fn valid(pool: &DescriptorPool) -> DynamicMessage {
    let desc = pool
        .get_message_by_name("meshwork.test.v1.Everything")
        .unwrap();
    let inner = pool.get_message_by_name("meshwork.test.v1.Inner").unwrap();
    let mut good_inner = DynamicMessage::new(inner);
    good_inner.set_field_by_name("code", Value::String("EUR".into()));
    good_inner.set_field_by_name("amount", Value::I64(5));
    let mut m = DynamicMessage::new(desc);
    m.set_field_by_name("id", Value::String("ab".into()));
    m.set_field_by_name("color", Value::EnumNumber(1));
    m.set_field_by_name("required_inner", Value::Message(good_inner));
    m.set_field_by_name("tags", Value::List(vec![Value::String("x".into())]));
    m.set_field_by_name("name", Value::String("n".into()));
    m.set_field_by_name("outside", Value::I32(5));
    m
}

fn fields(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

#[test]
fn a_valid_message_passes_and_zero_values_of_optional_filters_are_skipped() {
    let pool = test_pool();
    let v = validator(&pool);
    assert_eq!(v.check(&valid(&pool)), []);
    assert!(v.request_plan("meshwork.test.v1.Everything").is_some());
    assert!(
        v.request_plan("meshwork.test.v1.Inner").is_none(),
        "answers are not checked"
    );
}

#[test]
fn every_violation_is_reported_at_once_with_its_path() {
    let pool = test_pool();
    let v = validator(&pool);
    let inner = pool.get_message_by_name("meshwork.test.v1.Inner").unwrap();
    let mut bad_inner = DynamicMessage::new(inner);
    bad_inner.set_field_by_name("code", Value::String("eur".into()));
    bad_inner.set_field_by_name("amount", Value::I64(0));
    let mut m = valid(&pool);
    m.set_field_by_name("id", Value::String("".into()));
    m.set_field_by_name("filter", Value::String("nope".into()));
    m.set_field_by_name("page_size", Value::I32(501));
    m.set_field_by_name("color", Value::EnumNumber(7));
    m.clear_field_by_name("required_inner");
    m.set_field_by_name("optional_inner", Value::Message(bad_inner.clone()));
    m.set_field_by_name(
        "tags",
        Value::List(vec![
            Value::String("a".into()),
            Value::String("a".into()),
            Value::String("long".into()),
            Value::String("b".into()),
        ]),
    );
    m.set_field_by_name("inners", Value::List(vec![Value::Message(bad_inner)]));
    m.set_field_by_name(
        "counts",
        Value::Map(
            [
                (MapKey::String("a".into()), Value::I32(0)),
                (MapKey::String("b".into()), Value::I32(1)),
                (MapKey::String("c".into()), Value::I32(1)),
            ]
            .into(),
        ),
    );
    m.clear_field_by_name("name");
    m.set_field_by_name("maybe", Value::String("x".into()));
    m.set_field_by_name("ratio", Value::F64(1.0));
    // The simple form is a UUID to the uuid crate, not to protovalidate.
    m.set_field_by_name(
        "uuid",
        Value::String("67e5504410b1426f9247bb680e5fe0c8".into()),
    );
    m.set_field_by_name("outside", Value::I32(15));
    m.set_field_by_name("never", Value::String("x".into()));
    let violations = v.check(&m);
    assert_eq!(
        fields(&violations),
        [
            "id",
            "filter",
            "page_size",
            "color",
            "required_inner",
            "optional_inner.code",
            "optional_inner.amount",
            "tags",
            "tags",
            "tags[2]",
            "inners[0].code",
            "inners[0].amount",
            "counts",
            "counts[\"a\"]",
            "maybe",
            "ratio",
            "uuid",
            "outside",
            "target",
        ],
        "{violations:#?}"
    );
    let text = |field: &str| {
        violations
            .iter()
            .find(|v| v.field == field)
            .map(|v| v.description.clone())
            .unwrap()
    };
    assert_eq!(text("id"), "is required");
    assert_eq!(text("page_size"), "must be at least 0 and at most 500");
    assert_eq!(text("color"), "must be one of COLOR_RED, COLOR_GREEN");
    assert_eq!(
        text("optional_inner.code"),
        "must match ^[A-Z]{3}$ (e.g. \"EUR\")"
    );
    assert_eq!(
        text("optional_inner.amount"),
        "must be greater than 0 and at most 100"
    );
    assert_eq!(text("target"), "is required: set one of name, number");
    assert_eq!(text("outside"), "must be greater than 20 or less than 10");
}

#[test]
fn an_empty_list_meets_min_items_and_unset_messages_are_not_descended() {
    let pool = test_pool();
    let v = validator(&pool);
    let mut m = valid(&pool);
    m.clear_field_by_name("tags");
    assert_eq!(fields(&v.check(&m)), ["tags"]);
    m.set_field_by_name("tags", Value::List(vec![Value::String("x".into())]));
    m.clear_field_by_name("optional_inner");
    assert_eq!(v.check(&m), []);
}

#[test]
fn every_contract_rule_can_be_evaluated() {
    let validator = contracts();
    // The shared value type and a request: their rules were read.
    let money = validator.plan("meshwork.type.v1.PositiveMoney").unwrap();
    assert_eq!(money.fields.len(), 2);
}

#[test]
fn the_status_carries_every_field_violation() {
    let status = invalid_argument(&[Violation::new("a", "is required"), Violation::new("b", "x")]);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "2 invalid fields");
    let details = status.get_error_details();
    let bad = details.bad_request().unwrap();
    assert_eq!(bad.field_violations.len(), 2);
    assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
}

#[test]
fn a_refusal_lists_a_bounded_number_of_violations() {
    let many: Vec<Violation> = (0..1000)
        .map(|i| Violation::new(&format!("skus[{i}]"), "must match a pattern"))
        .collect();
    let status = invalid_argument(&many);
    assert_eq!(
        status.message(),
        "1000 invalid fields (the first 50 are listed)"
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(
        details.bad_request().unwrap().field_violations.len(),
        MAX_VIOLATIONS
    );
    assert!(status.details().len() < 8 * 1024, "fits a header");
}
