//! The XAPI source: polling `Recordings` for new entries and downloading their WAVs.
//!
//! The pipeline talks to the PBX only through [`RecordingSource`], which the host implements
//! over the connector's REST client (`pbx::xapi` `RestClient::recordings_after` and
//! `download_recording`, plus a newest-first listing), and tests implement over the simulator.
//!
//! Polling keeps a cursor, the highest `Id` seen: each poll asks
//! `Recordings?$filter=Id gt {cursor}&$orderby=Id asc&$top=100` and pages on while full pages
//! come back. The first poll after start has no cursor; it lists the 100 newest recordings
//! (`$orderby=Id desc`) instead of walking the whole history, and offers them all, so the
//! recordings of a call that ended just before a restart can still be matched. Waiters for
//! several calls share one poller: a poll is skipped when another finished less than
//! [`MIN_POLL_GAP`] ago, its results being already in the shared inbox.
//!
//! **Bad rows.** The connector reads a page row by row (`pbx::xapi::parse_page`). The cursor
//! moves past the `Id` of every row it got, usable or not, so one bad row never stalls polling.
//! A row that cannot be matched to a call (no usable `Id`, or its start or end time unknown)
//! is logged once (the cursor never brings it back) and counted
//! ([`Recorder::skipped_recordings`](super::Recorder::skipped_recordings)).
//!
//! **No access.** A `403` on XAPI (the API client lacks XAPI access or its department role) is
//! logged once as an error that says what to change; while it lasts, the poller asks again
//! only every [`FORBIDDEN_RETRY`] and answers the waiters with the same error in between, and
//! the first poll that works again logs that recordings resume. Call Control is not affected.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::matching::{Origin, RecordingMeta};
use crate::pbx::RestError;
use crate::pbx::xapi::Page;
use crate::telemetry::recordings::{RecordingRowWithoutId, RecordingTimesUnknown};

/// A boxed future, for the object-safe [`RecordingSource`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error of a [`RecordingSource`]; shown to the operator as is.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A recording's WAV file as it arrives, chunk by chunk; the pipeline writes it to disk and
/// stops reading at the size limit (`RecordingsConfig::max_download_bytes`).
pub type AudioStream = Pin<Box<dyn Stream<Item = Result<Bytes, SourceError>> + Send>>;

/// The most recordings one XAPI request may ask for.
pub const PAGE: u32 = 100;

/// The shortest time between two polls.
pub const MIN_POLL_GAP: Duration = Duration::from_millis(100);

/// How often XAPI is asked again while it answers `403`.
pub const FORBIDDEN_RETRY: Duration = Duration::from_secs(60);

/// One recording as XAPI lists it: the connector's typed record.
pub use crate::pbx::xapi::Recording as XapiRecording;

/// One page of XAPI recordings: the rows read, and why the others were skipped.
pub type RecordingPage = Page<XapiRecording>;

/// The XAPI requests the recordings pipeline makes.
pub trait RecordingSource: Send + Sync {
    /// `GET /xapi/v1/Recordings?$filter=Id gt {after_id}&$orderby=Id asc&$top={top}`.
    fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>>;

    /// `GET /xapi/v1/Recordings?$orderby=Id desc&$top={top}`: the newest recordings.
    fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>>;

    /// `GET /xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})`: the WAV file, as it
    /// arrives.
    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>>;
}

/// The connector's REST client is the real source: it shares the connector's one token.
impl RecordingSource for crate::pbx::RestClient {
    fn recordings_after(
        &self,
        after_id: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        Box::pin(
            async move { Ok(crate::pbx::RestClient::recordings_after(self, after_id, top).await?) },
        )
    }

    fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        Box::pin(async move { Ok(crate::pbx::RestClient::newest_recordings(self, top).await?) })
    }

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>> {
        Box::pin(async move {
            let download = crate::pbx::RestClient::open_recording(self, id).await?;
            let chunks = futures_util::stream::try_unfold(download, |mut download| async move {
                let chunk = download.chunk().await.map_err(SourceError::from)?;
                Ok::<_, SourceError>(chunk.map(|chunk| (chunk, download)))
            });
            Ok(Box::pin(chunks) as AudioStream)
        })
    }
}

/// The shared XAPI poller.
pub(crate) struct XapiPoller {
    client: Arc<dyn RecordingSource>,
    state: Mutex<PollState>,
    skipped: AtomicU64,
}

struct PollState {
    cursor: Option<u64>,
    last_poll: Option<Instant>,
    /// Since when XAPI answers `403`, and its error.
    forbidden: Option<(Instant, String)>,
}

impl XapiPoller {
    pub fn new(client: Arc<dyn RecordingSource>) -> Self {
        XapiPoller {
            client,
            state: Mutex::new(PollState {
                cursor: None,
                last_poll: None,
                forbidden: None,
            }),
            skipped: AtomicU64::new(0),
        }
    }

    /// Recordings that appeared since the last poll (none if another poll just happened).
    pub async fn poll(&self) -> Result<Vec<RecordingMeta>, SourceError> {
        let mut state = self.state.lock().await;
        if let Some((since, error)) = &state.forbidden
            && since.elapsed() < FORBIDDEN_RETRY
        {
            return Err(error.clone().into());
        }
        if state
            .last_poll
            .is_some_and(|at| at.elapsed() < MIN_POLL_GAP)
        {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let result = self.poll_into(&mut state, &mut found).await;
        state.last_poll = Some(Instant::now());
        match &result {
            Err(error) if is_xapi_forbidden(error.as_ref()) => {
                if state.forbidden.is_none() {
                    tracing::error!(%error, "recordings are unavailable until XAPI access is \
                        granted; Call Control goes on, XAPI is asked again every minute");
                }
                state.forbidden = Some((Instant::now(), error.to_string()));
            }
            Ok(()) if state.forbidden.take().is_some() => {
                tracing::info!("XAPI answers again; recordings resume");
            }
            _ => {}
        }
        // What was read before an error is kept: the cursor moved past it.
        match result {
            Err(error) if found.is_empty() => Err(error),
            _ => Ok(found),
        }
    }

    async fn poll_into(
        &self,
        state: &mut PollState,
        found: &mut Vec<RecordingMeta>,
    ) -> Result<(), SourceError> {
        let mut cursor = match state.cursor {
            Some(cursor) => cursor,
            None => {
                let mut cursor = 0;
                let newest = self.client.newest_recordings(PAGE).await?;
                self.take(&mut cursor, newest, found);
                state.cursor = Some(cursor);
                cursor
            }
        };
        loop {
            let page = self.client.recordings_after(cursor, PAGE).await?;
            let full = page.rows.len() + page.skipped.len() >= PAGE as usize;
            let before = cursor;
            self.take(&mut cursor, page, found);
            state.cursor = Some(cursor);
            // A full page that did not move the cursor would repeat for ever.
            if !full || cursor == before {
                return Ok(());
            }
        }
    }

    /// [`absorb`] with the skipped rows counted.
    fn take(&self, cursor: &mut u64, page: RecordingPage, found: &mut Vec<RecordingMeta>) {
        let skipped = absorb(cursor, page, found);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    /// The rows skipped so far because they cannot be matched.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The WAV file of recording `id`, as it arrives.
    pub async fn download(&self, id: u64) -> Result<AudioStream, SourceError> {
        self.client.download_recording(id).await
    }
}

/// Whether a source's error is XAPI's `403` (no XAPI access or role).
fn is_xapi_forbidden(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        error.downcast_ref::<RestError>(),
        Some(RestError::XapiForbidden { .. })
    )
}

/// Whether a source's error means the PBX could not be asked (or the answer not stored), so
/// that a later try may work: no token, transport errors, `401`/`403`, HTTP 5xx, `408`, `429`,
/// local I/O errors. `false` when the PBX answered (no such recording, another 4xx, bad JSON)
/// and for other errors.
pub(crate) fn is_outage(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if let Some(rest) = error.downcast_ref::<RestError>() {
        return match rest {
            RestError::RecordingNotFound { .. } | RestError::Malformed { .. } => false,
            RestError::Status { status, .. } => *status >= 500 || matches!(*status, 408 | 429),
            _ => true,
        };
    }
    error.downcast_ref::<std::io::Error>().is_some()
}

/// Takes one page: moves `cursor` past the `Id` of every row read, adds the rows above the old
/// cursor that can be matched to `found` (in page order), and logs the others once each.
/// Returns how many rows were skipped (counted by their events).
fn absorb(cursor: &mut u64, page: RecordingPage, found: &mut Vec<RecordingMeta>) -> u64 {
    let after = *cursor;
    let mut skipped = 0;
    for reason in &page.skipped {
        RecordingRowWithoutId { reason }.emit(&mut skipped);
    }
    for recording in page.rows {
        if recording.id <= after {
            continue;
        }
        *cursor = (*cursor).max(recording.id);
        let Some((start, end)) = recording.times() else {
            RecordingTimesUnknown {
                id: recording.id,
                url: &recording.recording_url,
                start: recording.start_time,
                end: recording.end_time,
            }
            .emit(&mut skipped);
            continue;
        };
        found.push(RecordingMeta {
            origin: Origin::Xapi(recording.id),
            name: recording.recording_url,
            from_dn: recording.from_dn,
            to_dn: recording.to_dn,
            from_number: recording.from_caller_number,
            to_number: recording.to_caller_number,
            start,
            end,
            pbx_call_id: None,
        });
    }
    skipped
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use jiff::Timestamp;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::pbx::xapi::parse_page;

    /// A fake XAPI serving `rows` (JSON values) page by page, as the connector would read them.
    #[derive(Default)]
    struct Rows {
        rows: StdMutex<Vec<Value>>,
        forbidden: StdMutex<bool>,
        requests: StdMutex<Vec<String>>,
    }

    impl Rows {
        fn answer(
            &self,
            request: String,
            pick: impl Fn(&Value) -> bool,
            top: u32,
        ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
            self.requests.lock().unwrap().push(request);
            let result = if *self.forbidden.lock().unwrap() {
                Err(RestError::XapiForbidden {
                    path: "/xapi/v1/Recordings".to_owned(),
                }
                .into())
            } else {
                let rows: Vec<Value> = self
                    .rows
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| pick(r))
                    .take(top as usize)
                    .cloned()
                    .collect();
                Ok(parse_page(json!({ "value": rows }).to_string().as_bytes()).unwrap())
            };
            Box::pin(async move { result })
        }
    }

    impl RecordingSource for Rows {
        fn recordings_after(
            &self,
            after: u64,
            top: u32,
        ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
            // A row without a usable Id is listed where its `Position` puts it.
            let pick = move |row: &Value| {
                let id = row.get("Id").and_then(Value::as_u64);
                id.or_else(|| row.get("Position")?.as_u64()) > Some(after)
            };
            self.answer(format!("after {after}"), pick, top)
        }

        fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
            self.answer("newest".to_owned(), |_| false, top)
        }

        fn download_recording(&self, _: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>> {
            Box::pin(async { Err("no audio here".into()) })
        }
    }

    fn row(id: u64, times: bool) -> Value {
        let time = |s| if times { json!(s) } else { Value::Null };
        json!({"Id": id, "RecordingUrl": null, "StartTime": time("2027-01-15T08:00:00Z"),
            "EndTime": time("2027-01-15T08:01:00.5Z"), "FromDn": "10000", "ToDn": "120",
            "FromCallerNumber": "0301234567", "ToCallerNumber": "Ext.120", "CallType": null})
    }

    #[tokio::test]
    async fn bad_rows_never_stall_the_cursor() {
        let source = Arc::new(Rows::default());
        {
            let mut rows = source.rows.lock().unwrap();
            rows.extend((1..=99).map(|id| row(id, false)));
            rows.push(json!({"Id": null, "Position": 99, "StartTime": "2027-01-15T08:00:00Z"}));
            rows.push(row(100, false));
            rows.push(row(101, true));
        }
        let poller = XapiPoller::new(source.clone());
        let found = poller.poll().await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (
                found[0].origin.clone(),
                found[0].name.as_str(),
                found[0].to_number.as_str()
            ),
            (Origin::Xapi(101), "", "Ext.120")
        );
        assert_eq!(
            poller.skipped(),
            101,
            "99 + 1 without times, 1 without an Id"
        );
        assert_eq!(
            *source.requests.lock().unwrap(),
            ["newest", "after 0", "after 99"],
            "the first page was full (the Id-less row counts), so paging went on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn xapi_403_is_asked_again_only_every_minute() {
        let source = Arc::new(Rows::default());
        *source.forbidden.lock().unwrap() = true;
        let poller = XapiPoller::new(source.clone());
        let requests = || source.requests.lock().unwrap().len();
        for _ in 0..3 {
            let error = poller.poll().await.unwrap_err().to_string();
            assert!(error.contains("no XAPI access"), "{error}");
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert_eq!(requests(), 1, "one request while forbidden");
        tokio::time::advance(FORBIDDEN_RETRY).await;
        assert!(poller.poll().await.is_err());
        assert_eq!(requests(), 2);

        *source.forbidden.lock().unwrap() = false;
        source.rows.lock().unwrap().push(row(5, true));
        assert!(poller.poll().await.is_err(), "still within the minute");
        tokio::time::advance(FORBIDDEN_RETRY).await;
        let found = poller.poll().await.unwrap();
        assert_eq!(
            found.iter().map(|r| r.origin.clone()).collect::<Vec<_>>(),
            [Origin::Xapi(5)]
        );
        tokio::time::advance(MIN_POLL_GAP).await;
        assert_eq!(poller.poll().await.unwrap(), []);
        assert_eq!(
            source.requests.lock().unwrap()[2..],
            ["newest", "after 0", "after 5"],
        );
    }

    // -----------------------------------------------------------------------------------------
    // Property: random nulls, missing keys and extra keys

    /// How one string field of a row is sent.
    #[derive(Debug, Clone)]
    enum Text {
        Given(String),
        Number(u32),
        Null,
        Missing,
    }

    impl Text {
        /// What the row should read as.
        fn read(&self) -> String {
            match self {
                Text::Given(text) => text.clone(),
                Text::Number(n) => n.to_string(),
                Text::Null | Text::Missing => String::new(),
            }
        }

        fn json(&self) -> Option<Value> {
            match self {
                Text::Given(text) => Some(json!(text)),
                Text::Number(n) => Some(json!(n)),
                Text::Null => Some(Value::Null),
                Text::Missing => None,
            }
        }
    }

    /// How one time field is sent: a known time (seconds, nanoseconds, fraction digits shown,
    /// offset in minutes or `Z`), or something that means unknown.
    #[derive(Debug, Clone)]
    enum Time {
        Known(i64, u32, usize, Option<i32>),
        Unknown(Value),
        Missing,
    }

    impl Time {
        fn read(&self) -> Option<Timestamp> {
            match self {
                Time::Known(secs, nanos, digits, _) => {
                    let shown =
                        nanos / 10u32.pow(9 - *digits as u32) * 10u32.pow(9 - *digits as u32);
                    Some(Timestamp::new(*secs, shown as i32).unwrap())
                }
                Time::Unknown(_) | Time::Missing => None,
            }
        }

        fn json(&self) -> Option<Value> {
            match self {
                Time::Known(secs, nanos, digits, offset) => {
                    let minutes = offset.unwrap_or(0);
                    let local = Timestamp::from_second(secs + i64::from(minutes) * 60).unwrap();
                    let mut text = local.strftime("%Y-%m-%dT%H:%M:%S").to_string();
                    if *digits > 0 {
                        text.push_str(&format!(".{nanos:09}")[..=*digits]);
                    }
                    match offset {
                        None => text.push('Z'),
                        Some(m) => {
                            let sign = if *m < 0 { '-' } else { '+' };
                            text.push_str(&format!(
                                "{sign}{:02}:{:02}",
                                m.abs() / 60,
                                m.abs() % 60
                            ));
                        }
                    }
                    Some(json!(text))
                }
                Time::Unknown(value) => Some(value.clone()),
                Time::Missing => None,
            }
        }
    }

    /// How a row's `Id` is sent.
    #[derive(Debug, Clone)]
    enum Id {
        Number,
        Text,
        Null,
        Missing,
        NotAnObject,
    }

    #[derive(Debug, Clone)]
    struct Row {
        id: Id,
        fields: Vec<Text>,
        start: Time,
        end: Time,
        extra: Vec<(String, Value)>,
    }

    const TEXT_KEYS: [&str; 8] = [
        "RecordingUrl",
        "FromDn",
        "ToDn",
        "FromCallerNumber",
        "ToCallerNumber",
        "FromDnType",
        "ToDnType",
        "CallType",
    ];

    fn text() -> impl Strategy<Value = Text> {
        prop_oneof![
            3 => "[ -~]{0,12}".prop_map(Text::Given),
            1 => any::<u32>().prop_map(Text::Number),
            1 => Just(Text::Null),
            1 => Just(Text::Missing),
        ]
    }

    fn time() -> impl Strategy<Value = Time> {
        let offset = proptest::option::of((-48i32..=56).prop_map(|quarters| quarters * 15));
        prop_oneof![
            4 => (946_684_800i64..4_102_444_800, 0u32..1_000_000_000, 0usize..=9, offset)
                .prop_map(|(s, n, d, o)| Time::Known(s, n, d, o)),
            1 => prop_oneof![
                Just(Value::Null),
                Just(json!("0001-01-01T00:00:00Z")),
                Just(json!("0001-01-01T00:00:00+00:00")),
                Just(json!("2027-01-15T08:00:00")),
                Just(json!("")),
                any::<u32>().prop_map(|n| json!(n)),
            ].prop_map(Time::Unknown),
            1 => Just(Time::Missing),
        ]
    }

    fn extra_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,8}".prop_map(|s| json!(s)),
            Just(json!({"Nested": [1, null]})),
        ]
    }

    fn row_strategy() -> impl Strategy<Value = Row> {
        let id = prop_oneof![
            6 => Just(Id::Number),
            1 => Just(Id::Text),
            1 => Just(Id::Null),
            1 => Just(Id::Missing),
            1 => Just(Id::NotAnObject),
        ];
        let extra = proptest::collection::vec(
            (
                "(Transcription|Summary|ArchivedUrl|FromDidNumber|X[a-z]{1,4})",
                extra_value(),
            ),
            0..3,
        );
        (
            id,
            proptest::collection::vec(text(), TEXT_KEYS.len()),
            time(),
            time(),
            extra,
        )
            .prop_map(|(id, fields, start, end, extra)| Row {
                id,
                fields,
                start,
                end,
                extra,
            })
    }

    /// The row as JSON, with `id` as its `Id` when it has a usable one.
    fn to_json(row: &Row, id: u64) -> Value {
        let mut object = Map::new();
        for (key, value) in &row.extra {
            object.insert(key.clone(), value.clone());
        }
        match row.id {
            Id::Number => drop(object.insert("Id".to_owned(), json!(id))),
            Id::Text => drop(object.insert("Id".to_owned(), json!(id.to_string()))),
            Id::Null => drop(object.insert("Id".to_owned(), Value::Null)),
            Id::Missing => {}
            Id::NotAnObject => return json!([id]),
        }
        for (key, field) in TEXT_KEYS.iter().zip(&row.fields) {
            if let Some(value) = field.json() {
                object.insert((*key).to_owned(), value);
            }
        }
        for (key, time) in [("StartTime", &row.start), ("EndTime", &row.end)] {
            if let Some(value) = time.json() {
                object.insert(key.to_owned(), value);
            }
        }
        Value::Object(object)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Every row with a usable `Id` and both times comes through with exactly the values
        /// sent; every other row is counted; the cursor passes every row with an `Id`.
        #[test]
        fn random_rows_keep_every_usable_one_and_pass_every_id(
            rows in proptest::collection::vec(row_strategy(), 0..40),
            ids in proptest::collection::btree_set(1u64..1_000_000, 40),
            descending in any::<bool>(),
        ) {
            let mut ids: Vec<u64> = ids.into_iter().collect();
            if descending {
                ids.reverse();
            }
            let values: Vec<Value> = rows.iter().zip(&ids).map(|(row, id)| to_json(row, *id)).collect();
            let body = json!({"@odata.context": "x", "value": values, "@odata.nextLink": null});
            let page = parse_page::<XapiRecording>(body.to_string().as_bytes()).unwrap();

            let mut cursor = 0;
            let mut found = Vec::new();
            let skipped = absorb(&mut cursor, page, &mut found);

            let with_id: Vec<(&Row, u64)> = rows
                .iter()
                .zip(ids.iter().copied())
                .filter(|(row, _)| matches!(row.id, Id::Number | Id::Text))
                .collect();
            prop_assert_eq!(cursor, with_id.iter().map(|(_, id)| *id).max().unwrap_or(0));
            let expected: Vec<RecordingMeta> = with_id
                .iter()
                .filter_map(|(row, id)| {
                    let [url, from_dn, to_dn, from_number, to_number, ..] = &row.fields[..] else {
                        unreachable!()
                    };
                    Some(RecordingMeta {
                        origin: Origin::Xapi(*id),
                        name: url.read(),
                        from_dn: from_dn.read(),
                        to_dn: to_dn.read(),
                        from_number: from_number.read(),
                        to_number: to_number.read(),
                        start: row.start.read()?,
                        end: row.end.read()?,
                        pbx_call_id: None,
                    })
                })
                .collect();
            prop_assert_eq!(skipped as usize, rows.len() - expected.len());
            prop_assert_eq!(found, expected);
        }
    }
}
