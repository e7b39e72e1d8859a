//! The gRPC face of finance.transaction: protobuf ↔ domain conversion and
//! validation, nothing else.

use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::time::to_timestamp;
use meshwork_runtime::validate::{self as checked, Checks, next_page_token};
use pb::transaction_service_server::TransactionService;
use tonic::{Request, Response, Status};

use crate::domain::{NewTransfer, Review, Transfer, TransferState};
use crate::store::ListFilter;
use crate::workflow::Transfers;

/// Implements `meshwork.finance.transaction.v1.TransactionService`.
pub struct TransactionApi {
    transfers: Transfers,
}

impl TransactionApi {
    /// The service over its workflow.
    pub fn new(transfers: Transfers) -> Self {
        Self { transfers }
    }
}

#[tonic::async_trait]
impl TransactionService for TransactionApi {
    async fn transfer(
        &self,
        request: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        if r.from_account_id == r.to_account_id {
            checks.fail("to_account_id", "must differ from from_account_id");
        }
        checks.finish()?;
        let (currency, amount_minor) = checked::amount("amount", r.amount.as_ref())?;
        let new = NewTransfer {
            from_account_id: r.from_account_id,
            to_account_id: r.to_account_id,
            currency,
            amount_minor,
            memo: r.memo,
        };
        let transfer = self.transfers.transfer(&r.request_id, &new).await?;
        Ok(Response::new(pb::TransferResponse {
            transfer: Some(transfer_to_pb(&transfer)),
        }))
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::GetTransferResponse>, Status> {
        let r = request.into_inner();
        let transfer = self.transfers.store().get(&r.transfer_id).await?;
        Ok(Response::new(pb::GetTransferResponse {
            transfer: Some(transfer_to_pb(&transfer)),
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        let page_size = checked::page_size(r.page_size);
        let after = checked::page_token(&r.page_token);
        let (start, end) = checks.period(
            ("start_time", r.start_time.as_ref()),
            ("end_time", r.end_time.as_ref()),
            false,
        );
        checks.finish()?;
        let filter = ListFilter {
            account_id: r.account_id,
            start,
            end,
        };
        let mut transfers = self
            .transfers
            .store()
            .list(&filter, after.as_deref(), page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut transfers, page_size, |t| t.id.clone());
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: transfers.iter().map(transfer_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::GetStatementResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        let (start, end) = checks.period(
            ("start_time", r.start_time.as_ref()),
            ("end_time", r.end_time.as_ref()),
            true,
        );
        checks.finish()?;
        let (Some(start), Some(end)) = (start, end) else {
            unreachable!("checks passed")
        };
        let (currency, statement) = self.transfers.statement(&r.account_id, start, end).await?;
        let money = |amount_minor| {
            Some(Money {
                currency: currency.clone(),
                amount_minor,
            })
        };
        Ok(Response::new(pb::GetStatementResponse {
            account_id: r.account_id,
            opening_balance: money(statement.opening_minor),
            closing_balance: money(statement.closing_minor),
            total_credits: money(statement.credits_minor),
            total_debits: money(statement.debits_minor),
            lines: statement
                .lines
                .iter()
                .map(|line| pb::StatementLine {
                    occur_time: Some(to_timestamp(line.occur_at)),
                    kind: line.kind.clone(),
                    amount: money(line.amount_minor),
                    balance_after: money(line.balance_after_minor),
                    posting_id: line.posting_id.clone(),
                    transfer_id: line.transfer_id.clone(),
                    counterparty_account_id: line.counterparty_account_id.clone(),
                })
                .collect(),
        }))
    }

    async fn approve_transfer(
        &self,
        request: Request<pb::ApproveTransferRequest>,
    ) -> Result<Response<pb::ApproveTransferResponse>, Status> {
        let r = request.into_inner();
        let review = Review::Approve { note: r.note };
        let transfer = self.review(&r.request_id, &r.transfer_id, review).await?;
        Ok(Response::new(pb::ApproveTransferResponse {
            transfer: Some(transfer),
        }))
    }

    async fn decline_transfer(
        &self,
        request: Request<pb::DeclineTransferRequest>,
    ) -> Result<Response<pb::DeclineTransferResponse>, Status> {
        let r = request.into_inner();
        let review = Review::Decline { reason: r.reason };
        let transfer = self.review(&r.request_id, &r.transfer_id, review).await?;
        Ok(Response::new(pb::DeclineTransferResponse {
            transfer: Some(transfer),
        }))
    }

    async fn reverse_transfer(
        &self,
        request: Request<pb::ReverseTransferRequest>,
    ) -> Result<Response<pb::ReverseTransferResponse>, Status> {
        let r = request.into_inner();
        let transfer = self
            .transfers
            .reverse(&r.request_id, &r.transfer_id, &r.reason)
            .await?;
        Ok(Response::new(pb::ReverseTransferResponse {
            transfer: Some(transfer_to_pb(&transfer)),
        }))
    }
}

impl TransactionApi {
    async fn review(
        &self,
        request_id: &str,
        transfer_id: &str,
        review: Review,
    ) -> Result<pb::Transfer, Status> {
        let transfer = self
            .transfers
            .review(request_id, transfer_id, &review)
            .await?;
        Ok(transfer_to_pb(&transfer))
    }
}

fn transfer_to_pb(transfer: &Transfer) -> pb::Transfer {
    let details = &transfer.details;
    pb::Transfer {
        transfer_id: transfer.id.clone(),
        from_account_id: details.from_account_id.clone(),
        to_account_id: details.to_account_id.clone(),
        amount: Some(Money {
            currency: details.currency.to_string(),
            amount_minor: details.amount_minor,
        }),
        memo: details.memo.clone(),
        state: match transfer.state {
            TransferState::Processing => pb::TransferState::Processing,
            TransferState::PendingReview => pb::TransferState::PendingReview,
            TransferState::Posted => pb::TransferState::Posted,
            TransferState::Rejected => pb::TransferState::Rejected,
            TransferState::Failed => pb::TransferState::Failed,
            TransferState::Reversed => pb::TransferState::Reversed,
        } as i32,
        failure_reason: transfer
            .refusal
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
        posting_id: transfer.posting_id.clone(),
        reversal_posting_id: transfer.reversal.posting_id.clone(),
        reversal_reason: transfer.reversal.reason.clone(),
        create_time: Some(to_timestamp(transfer.created_at)),
        update_time: Some(to_timestamp(transfer.updated_at)),
        risk_score: transfer.risk.score,
        risk_reasons: transfer.risk.reasons.clone(),
    }
}
