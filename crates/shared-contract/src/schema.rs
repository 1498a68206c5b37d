//! Hand-written OpenAPI schemas for the types whose JSON shape serde derives cannot describe:
//! `Id` (a validated string), `Entry<T>` (payload keyed by its kind) and the generic `Snapshot`.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type,
        schema::SchemaType,
    },
};

use crate::{Entry, Id, Kind, Kinded, MAX_ID_LEN, Snapshot, State};

/// The id rule as a JSON Schema pattern, kept next to `is_valid_id` in meaning.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]+$";

/// "No control characters" as a JSON Schema pattern: exactly the characters `char::is_control`
/// refuses (Unicode category Cc), which `check_text` rejects with a `422`.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some(ID_PATTERN))
            .description(Some("1-128 characters of [A-Za-z0-9._:-]"))
            .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Id")
    }
}

impl<T: ToSchema + Kinded> PartialSchema for Entry<T> {
    fn schema() -> RefOr<Schema> {
        let kind = T::KIND.as_str();
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!(
                "One {kind} registry entry; the payload is under \"{kind}\", as sent"
            )))
            .property(kind, schema_ref::<T>())
            .required(kind)
            .property("state", schema_ref::<State>())
            .required("state")
            .property("available", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("available")
            .property("first_seen", timestamp())
            .required("first_seen")
            .property("last_seen", timestamp())
            .required("last_seen")
            .property("last_seen_ms_ago", unsigned())
            .required("last_seen_ms_ago")
            .property("clock_skew_ms", integer())
            .required("clock_skew_ms")
            .property("restarts", unsigned())
            .required("restarts")
            .property(
                "conflict",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("present and true while two processes send this id")),
            )
            .property(
                "restored",
                ObjectBuilder::new().schema_type(Type::Boolean).description(Some(
                    "present and true from a queen restart until the entry's first heartbeat since",
                )),
            )
            .into()
    }
}

impl<T: ToSchema + Kinded> ToSchema for Entry<T> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(match T::KIND {
            Kind::Worker => "WorkerEntry",
            Kind::Hive => "HiveEntry",
        })
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        push::<T>(schemas);
        push::<State>(schemas);
    }
}

impl<W, H> PartialSchema for Snapshot<W, H>
where
    W: ToSchema + Kinded,
    H: ToSchema + Kinded,
{
    fn schema() -> RefOr<Schema> {
        let ids = || ArrayBuilder::new().items(schema_ref::<Id>());
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The whole fleet at one instant"))
            .property("seq", unsigned())
            .required("seq")
            .property("timestamp", timestamp())
            .required("timestamp")
            .property(
                "epoch",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("Names the change log the revision belongs to")),
            )
            .required("epoch")
            .property("revision", unsigned())
            .required("revision")
            .property("workers_online", unsigned())
            .required("workers_online")
            .property("workers_available", unsigned())
            .required("workers_available")
            .property("hives_online", unsigned())
            .required("hives_online")
            .property("hives_available", unsigned())
            .required("hives_available")
            .property("worker_ids", ids())
            .required("worker_ids")
            .property("hive_ids", ids())
            .required("hive_ids")
            .property(
                "workers",
                ArrayBuilder::new().items(schema_ref::<Entry<W>>()),
            )
            .required("workers")
            .property("hives", ArrayBuilder::new().items(schema_ref::<Entry<H>>()))
            .required("hives")
            .into()
    }
}

impl<W, H> ToSchema for Snapshot<W, H>
where
    W: ToSchema + Kinded,
    H: ToSchema + Kinded,
{
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FleetSnapshot")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        push::<Id>(schemas);
        push::<Entry<W>>(schemas);
        push::<Entry<H>>(schemas);
    }
}

/// A `$ref` to `T`'s named component.
fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// Registers `T` and everything it references.
fn push<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn timestamp() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

fn unsigned() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::UInt64)))
        .minimum(Some(0))
}
