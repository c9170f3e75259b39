//! Hostile request values, each mixed with valid ones of the fuzz world (tenant `acme`,
//! `contoso.com`, its users, the phishing message) so that validation sometimes passes.

use proptest::prelude::*;

/// Values that are valid in the fuzz world (see `rpc::world`).
pub const KNOWN: &[&str] = &[
    "acme",
    "globex",
    "contoso.com",
    "user0@contoso.com",
    "user1@contoso.com",
    "admin@contoso.com",
    "ceo@evil.example",
    "<phish-1@evil.example>",
    "Urgent wire transfer",
];

/// Strings that break naive code: quotes, OData and URL syntax, escapes, bidi and
/// zero-width characters, NUL.
pub const NASTY: &[&str] = &[
    "'",
    "''",
    "\"",
    "\\",
    "' or 1 eq 1 or '",
    "<x' or internetMessageId ne 'y@evil>",
    "$filter=id ne null",
    "&$top=999",
    "%",
    "%00",
    "%27%20or%20",
    "%zz",
    "\u{0}",
    "a\u{0}b",
    "\r\n",
    "\u{202e}moc.elgoog",
    "\u{200b}",
    "\u{feff}",
    "💣",
    "../../etc/passwd",
    "*",
    "?",
    "#",
    "+",
    "{}",
    "null",
    "-1",
    "9223372036854775808",
    "\u{10ffff}",
];

/// Mostly `valid`, now and then `hostile`: a request whose every field were hostile would
/// be refused for its first field and never reach the code behind validation.
pub fn or_hostile<T: std::fmt::Debug + Clone + 'static>(
    valid: impl Strategy<Value = T> + 'static,
    hostile: BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    prop_oneof![6 => valid, 1 => hostile].boxed()
}

/// Any string a hostile caller might send.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(KNOWN).prop_map(str::to_owned),
        2 => proptest::sample::select(NASTY).prop_map(str::to_owned),
        1 => Just(String::new()),
        2 => "\\PC{0,40}",
        1 => "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]{1,6}",
        1 => (1usize..=4).prop_map(|k| "x".repeat(k * 25_000)),
        2 => (
            proptest::sample::select(KNOWN),
            proptest::sample::select(NASTY)
        )
            .prop_map(|(known, nasty)| format!("{known}{nasty}")),
    ]
    .boxed()
}

/// An email-ish address: a real user, a hostile local part or domain, or any text.
pub fn email() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(&KNOWN[3..7]).prop_map(str::to_owned),
        2 => (text(), text()).prop_map(|(local, domain)| format!("{local}@{domain}")),
        1 => "[a-z0-9.+_-]{1,70}@contoso\\.com",
        1 => text(),
    ]
    .boxed()
}

/// A domain name: a real one, a wildcard, an IP literal, unicode, a trailing dot, too long.
pub fn domain() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just("contoso.com".to_owned()),
        1 => "[a-z0-9-]{1,20}\\.example",
        1 => proptest::sample::select(&[
            "*.acme.example",
            "bücher.example",
            "xn--bcher-kva.example",
            "1.2.3.4",
            "[::1]",
            "example.com.",
            "localhost",
            ".",
            "a..b",
            "-a.example",
        ][..])
        .prop_map(str::to_owned),
        1 => Just(format!("{}.example", "a".repeat(250))),
        2 => text(),
    ]
    .boxed()
}

/// A tenant id: mostly `acme` (the caller's), sometimes another or an invalid one.
pub fn tenant_id() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just("acme".to_owned()),
        1 => Just("globex".to_owned()),
        1 => "[a-z0-9-]{1,70}",
        2 => text(),
    ]
    .boxed()
}

/// A UUID-ish id (request ids, grant ids): valid, or malformed; `known` adds real ids.
pub fn uuid_like(known: Vec<String>) -> BoxedStrategy<String> {
    let mut options = vec![
        any::<u128>()
            .prop_map(|n| uuid::Uuid::from_u128(n).to_string())
            .boxed(),
        any::<u128>()
            .prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string().to_uppercase())
            .boxed(),
        any::<u128>()
            .prop_map(|n| format!("{{{}}}", uuid::Uuid::from_u128(n)))
            .boxed(),
        text(),
    ];
    if !known.is_empty() {
        options.push(proptest::sample::select(known.clone()).boxed());
        // A real id with something after it must not find the job.
        options.push(
            (
                proptest::sample::select(known),
                proptest::sample::select(NASTY),
            )
                .prop_map(|(id, nasty)| format!("{id}{nasty}"))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

/// An `int32` request field: small, negative, huge.
pub fn int32() -> BoxedStrategy<i32> {
    prop_oneof![
        3 => 0i32..=1_100,
        1 => Just(-1),
        1 => Just(i32::MIN),
        1 => Just(i32::MAX),
        2 => any::<i32>(),
    ]
    .boxed()
}

/// An `int64` request field.
pub fn int64() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => 0i64..=100,
        1 => Just(-1),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        2 => any::<i64>(),
    ]
    .boxed()
}

/// An enum field: a known value, or one no version of the contract defines.
pub fn enum_value() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0i32..=16, 1 => any::<i32>()].boxed()
}

/// A timestamp field: unset, sensible, out of every database's range, or with bad nanos.
pub fn timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        3 => 1_500_000_000i64..=2_000_000_000,
        1 => -62_135_596_800i64..=253_402_300_799,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
    ];
    let nanos = prop_oneof![4 => 0i32..1_000_000_000, 1 => any::<i32>()];
    proptest::option::weighted(
        0.7,
        (seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
    .boxed()
}

/// A recipient list: short, long, or at the size a large tenant really sends.
pub fn recipients() -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        4 => proptest::collection::vec(email(), 0..6),
        1 => proptest::collection::vec(email(), 0..200),
        1 => (900usize..=1_200)
            .prop_map(|n| (0..n).map(|i| format!("user{i}@contoso.com")).collect()),
    ]
    .boxed()
}

/// A repeated enum field.
pub fn enum_values() -> BoxedStrategy<Vec<i32>> {
    proptest::collection::vec(enum_value(), 0..5).boxed()
}
