//! The gRPC face of commerce.product: protobuf ↔ domain conversion only.

use meshwork_proto::meshwork::commerce::product::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::time::to_timestamp;
use meshwork_runtime::validate::{self as checked, next_page_token};
use pb::product_service_server::ProductService;
use tonic::{Request, Response, Status};

use crate::catalog::Catalog;
use crate::domain::{Fields, Product};

/// Implements `meshwork.commerce.product.v1.ProductService`.
pub struct ProductApi {
    catalog: Catalog,
}

impl ProductApi {
    /// The service over its catalogue.
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let r = request.into_inner();
        let product = r.product.unwrap_or_default();
        let created = self
            .catalog
            .create(&r.request_id, &r.sku, &fields_of(&product))
            .await?;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(product_to_pb(&created)),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let product = self.catalog.get(&request.into_inner().sku).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product_to_pb(&product)),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let skus = request.into_inner().skus;
        let found = self.catalog.get_many(&skus).await?;
        Ok(Response::new(pb::BatchGetProductsResponse {
            products: skus
                .into_iter()
                .zip(found)
                .map(|(sku, product)| pb::ProductLookup {
                    sku,
                    found: product.is_some(),
                    product: product.as_ref().map(product_to_pb),
                })
                .collect(),
        }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        let mut found = self
            .catalog
            .store()
            .list(&r.category, &r.brand, &r.page_token, page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut found, page_size, |p| p.sku.clone());
        Ok(Response::new(pb::ListProductsResponse {
            products: found.iter().map(product_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let r = request.into_inner();
        let product = r.product.unwrap_or_default();
        let updated = self
            .catalog
            .update(
                &r.request_id,
                &r.sku,
                &fields_of(&product),
                r.expected_version,
            )
            .await?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(product_to_pb(&updated)),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        let r = request.into_inner();
        let deleted = self.catalog.delete(&r.request_id, &r.sku).await?;
        Ok(Response::new(pb::DeleteProductResponse {
            product: Some(product_to_pb(&deleted)),
        }))
    }
}

/// The fields a request sets (the contract checked them).
fn fields_of(product: &pb::Product) -> Fields {
    let price = product.price.clone().unwrap_or_default();
    Fields {
        name: product.name.clone(),
        description: product.description.clone(),
        brand: product.brand.clone(),
        category: product.category.clone(),
        currency: price.currency,
        price_minor: price.amount_minor,
        weight_grams: i64::from(product.weight_grams),
        attributes: product.attributes.clone().into_iter().collect(),
    }
}

/// A product as the contract has it.
pub fn product_to_pb(p: &Product) -> pb::Product {
    let f = &p.fields;
    pb::Product {
        sku: p.sku.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        brand: f.brand.clone(),
        category: f.category.clone(),
        price: Some(PositiveMoney {
            currency: f.currency.clone(),
            amount_minor: f.price_minor,
        }),
        weight_grams: i32::try_from(f.weight_grams).unwrap_or(i32::MAX),
        attributes: f.attributes.clone().into_iter().collect(),
        version: p.version,
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
    }
}
