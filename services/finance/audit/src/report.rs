//! The compliance report: the stored (masked) records of a period, read
//! page by page, each in the sections it belongs in (see
//! [`sections`]), as lines and as one CSV text.

use meshwork_runtime::time::to_timestamp;

use crate::domain::{ReportLine, Section, csv_field, sections};
use crate::error::AuditError;
use crate::store::{Filter, PAGE, Store};

/// The CSV's header line.
const CSV_HEADER: &str =
    "section,occur_time,sequence,action,resource,outcome,amount_minor,currency,accounts,detail\r\n";

/// A compliance report: the lines of each section, in sequence order, and
/// all of them as CSV (a record in two sections is two lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// [`Section::LargeTransaction`].
    pub large_transactions: Vec<ReportLine>,
    /// [`Section::FrozenAccount`].
    pub frozen_accounts: Vec<ReportLine>,
    /// [`Section::RejectedTransfer`].
    pub rejected_transfers: Vec<ReportLine>,
    /// [`Section::ReviewedTransfer`].
    pub reviewed_transfers: Vec<ReportLine>,
    /// [`Section::FailedPayment`].
    pub failed_payments: Vec<ReportLine>,
    /// Every line, with a header, RFC 4180 (CRLF line ends).
    pub csv: String,
}

/// The report over the records that occurred at or after `start` and
/// before `end` (microseconds; `None` is unbounded), with movements of at
/// least `large_amount_minor` counted as large.
pub async fn compliance_report(
    store: &Store,
    start: Option<i64>,
    end: Option<i64>,
    large_amount_minor: i64,
) -> Result<Report, AuditError> {
    let filter = Filter {
        start,
        end,
        ..Filter::default()
    };
    let mut report = Report::default();
    let mut csv = String::from(CSV_HEADER);
    let mut after = 0;
    loop {
        let records = store.query(&filter, after, PAGE).await?;
        for record in &records {
            for section in sections(&record.event, large_amount_minor) {
                let line = ReportLine::new(section, record);
                csv.push_str(&csv_line(&line));
                match section {
                    Section::LargeTransaction => report.large_transactions.push(line),
                    Section::FrozenAccount => report.frozen_accounts.push(line),
                    Section::RejectedTransfer => report.rejected_transfers.push(line),
                    Section::ReviewedTransfer => report.reviewed_transfers.push(line),
                    Section::FailedPayment => report.failed_payments.push(line),
                }
            }
            after = record.sequence;
        }
        if records.len() < PAGE {
            break;
        }
    }
    report.csv = csv;
    Ok(report)
}

/// One CSV line, CRLF-terminated.
fn csv_line(line: &ReportLine) -> String {
    // The time as the line's `occur_time` Timestamp prints (RFC 3339, UTC).
    let time = to_timestamp(line.occurred_at).to_string();
    let (amount, currency) = line
        .amount
        .as_ref()
        .map(|m| (m.amount_minor.to_string(), m.currency.clone()))
        .unwrap_or_default();
    let fields = [
        line.section.as_str().to_owned(),
        time,
        line.sequence.to_string(),
        line.action.clone(),
        line.resource.clone(),
        line.outcome.clone(),
        amount,
        currency,
        line.accounts.clone(),
        line.detail.clone(),
    ];
    let mut text = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    text.push_str("\r\n");
    text
}
