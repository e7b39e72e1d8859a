//! The gRPC face of finance.audit: masking at the door, protobuf ↔ domain
//! conversion and validation. The chain is walked in [`crate::verify`],
//! reports are built in [`crate::report`].

use std::collections::BTreeMap;

use meshwork_proto::meshwork::finance::audit::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::time::{from_timestamp, to_timestamp};
use meshwork_runtime::validate::{self as checked, Checks, next_page_token};
use pb::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use crate::domain::{DEFAULT_LARGE_AMOUNT_MINOR, Event, Record, ReportLine};
use crate::masking::Masking;
use crate::report::{self, Report};
use crate::store::{Filter, Store};
use crate::verify;

/// Longest text field of an event (the contract's `max_len`).
const MAX_TEXT: usize = 1024;

/// Implements `meshwork.finance.audit.v1.AuditService`.
pub struct AuditApi {
    store: Store,
    masking: Masking,
}

impl AuditApi {
    /// The service over its store and masking rules.
    pub fn new(store: Store, masking: Masking) -> Self {
        Self { store, masking }
    }

    fn masked(&self, event: pb::AuditEvent) -> Event {
        masked(&self.masking, event)
    }
}

/// What an event must be to be appended, whether it comes by RecordEvent
/// or from an event log (which no server's codec checked): its contract's
/// rules, and a time protobuf can represent.
pub(crate) fn check_event(
    event: &pb::AuditEvent,
) -> Result<(), meshwork_runtime::validate::Invalid> {
    let mut checks = Checks::new();
    checks.contract("event", event);
    checks.timestamp("event.occur_time", event.occur_time.as_ref());
    checks.finish()
}

/// A masked text cut to [`MAX_TEXT`] characters: masking may lengthen a
/// value (`a@b.cc` → `a***@b.cc`), and a stored record meets the same
/// contract as the event that made it.
fn capped(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(MAX_TEXT) {
        text.truncate(at);
    }
    text
}

/// The event as it may be stored: every text masked (attributes named
/// exempt stay).
pub(crate) fn masked(m: &Masking, event: pb::AuditEvent) -> Event {
    {
        Event {
            event_id: event.event_id,
            source: event.source,
            actor: capped(m.mask(&event.actor)),
            action: event.action,
            resource: capped(m.mask(&event.resource)),
            outcome: capped(m.mask(&event.outcome)),
            attributes: event
                .attributes
                .into_iter()
                .map(|(key, value)| {
                    let masked = m.mask_attribute(&key, &value);
                    (key, masked)
                })
                .collect::<BTreeMap<_, _>>(),
            occurred_at: event.occur_time.as_ref().map_or(0, from_timestamp),
            trace_id: event.trace_id,
        }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn record_event(
        &self,
        request: Request<pb::RecordEventRequest>,
    ) -> Result<Response<pb::RecordEventResponse>, Status> {
        let event = request.into_inner().event.unwrap_or_default();
        check_event(&event)?;
        let (record, duplicate) = self
            .store
            .append(&self.masked(event))
            .await
            .map_err(Status::from)?;
        if !duplicate {
            tracing::info!(sequence = record.sequence, action = %record.event.action, "audit record appended");
        }
        Ok(Response::new(pb::RecordEventResponse {
            record: Some(record_to_pb(&record)),
            duplicate,
        }))
    }

    async fn query_audit_log(
        &self,
        request: Request<pb::QueryAuditLogRequest>,
    ) -> Result<Response<pb::QueryAuditLogResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        // Empty or up to 18 digits (the contract's rule).
        let after = r.page_token.parse::<i64>().unwrap_or(0);
        let filter = Filter {
            source: r.source,
            // Filters are masked like the records, so that a clear number
            // finds its masked records without ever being stored.
            actor: self.masking.mask(&r.actor),
            action: r.action,
            resource: self.masking.mask(&r.resource),
            outcome: r.outcome,
            start: r.start_time.as_ref().map(from_timestamp),
            end: r.end_time.as_ref().map(from_timestamp),
        };
        let mut records = self
            .store
            .query(&filter, after, page_size + 1)
            .await
            .map_err(Status::from)?;
        let next_page_token = next_page_token(&mut records, page_size, |r| r.sequence.to_string());
        Ok(Response::new(pb::QueryAuditLogResponse {
            records: records.iter().map(record_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let (checked, broken) = verify::verify_chain(&self.store)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::VerifyChainResponse {
            intact: broken.is_none(),
            records_checked: checked,
            first_broken_sequence: broken.as_ref().map_or(0, |b| b.sequence()),
            problem: broken.map(|b| b.describe()).unwrap_or_default(),
        }))
    }

    async fn generate_compliance_report(
        &self,
        request: Request<pb::GenerateComplianceReportRequest>,
    ) -> Result<Response<pb::GenerateComplianceReportResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        let (start, end) = checks.period(
            ("start_time", r.start_time.as_ref()),
            ("end_time", r.end_time.as_ref()),
            true,
        );
        checks.finish()?;
        let large = match r.large_amount_minor {
            0 => DEFAULT_LARGE_AMOUNT_MINOR,
            n => n,
        };
        let report = report::compliance_report(&self.store, start, end, large)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(report_to_pb(report)))
    }
}

fn report_to_pb(report: Report) -> pb::GenerateComplianceReportResponse {
    let lines = |lines: Vec<ReportLine>| lines.iter().map(line_to_pb).collect();
    pb::GenerateComplianceReportResponse {
        large_transactions: lines(report.large_transactions),
        frozen_accounts: lines(report.frozen_accounts),
        rejected_transfers: lines(report.rejected_transfers),
        reviewed_transfers: lines(report.reviewed_transfers),
        failed_payments: lines(report.failed_payments),
        csv: report.csv,
    }
}

fn line_to_pb(line: &ReportLine) -> pb::ReportLine {
    pb::ReportLine {
        section: line.section.as_str().to_owned(),
        occur_time: Some(to_timestamp(line.occurred_at)),
        action: line.action.clone(),
        resource: line.resource.clone(),
        outcome: line.outcome.clone(),
        amount: line.amount.as_ref().map(|a| Money {
            currency: a.currency.clone(),
            amount_minor: a.amount_minor,
        }),
        accounts: line.accounts.clone(),
        detail: line.detail.clone(),
        sequence: line.sequence,
    }
}

fn record_to_pb(record: &Record) -> pb::AuditRecord {
    let e = &record.event;
    pb::AuditRecord {
        sequence: record.sequence,
        event: Some(pb::AuditEvent {
            event_id: e.event_id.clone(),
            source: e.source.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            resource: e.resource.clone(),
            outcome: e.outcome.clone(),
            attributes: e.attributes.clone().into_iter().collect(),
            occur_time: Some(to_timestamp(e.occurred_at)),
            trace_id: e.trace_id.clone(),
        }),
        record_time: Some(to_timestamp(record.recorded_at)),
        previous_hash: record.previous_hash.clone(),
        hash: record.hash.clone(),
    }
}
