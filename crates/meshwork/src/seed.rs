//! Demo data for `meshwork up` (accounts, risk rules, a transfer, a payment
//! that the sandbox provider pays a moment later), loaded
//! through the public gRPC API with fixed request ids: a second start finds
//! every request already done, so the data is loaded once and never
//! duplicated.

use meshwork_proto::meshwork::commerce::cart::v1 as cart_pb;
use meshwork_proto::meshwork::commerce::inventory::v1 as inventory_pb;
use meshwork_proto::meshwork::commerce::product::v1 as product_pb;
use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::finance::payment::v1 as payment_pb;
use meshwork_proto::meshwork::finance::risk::v1 as risk_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as tx_pb;
use meshwork_proto::meshwork::r#type::v1::PositiveMoney;
use meshwork_runtime::client::{self, ClientPolicy};
use pb::account_service_client::AccountServiceClient;
use risk_pb::risk_service_client::RiskServiceClient;
use tx_pb::transaction_service_client::TransactionServiceClient;

/// (owner, currency, type, opening deposit in minor units)
const ACCOUNTS: &[(&str, &str, pb::AccountType, i64)] = &[
    ("alice", "EUR", pb::AccountType::Checking, 125_000),
    ("bob", "EUR", pb::AccountType::Savings, 50_000),
    ("wang.fang", "CNY", pb::AccountType::Checking, 880_000),
    ("acme-store", "EUR", pb::AccountType::Merchant, 0),
    ("acme-store", "CNY", pb::AccountType::Merchant, 0),
];

/// Loads the demo data into the services at `url`; returns what to print.
pub async fn demo_data(url: &str, policy: ClientPolicy) -> anyhow::Result<String> {
    let channel = client::channel(url, policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut accounts = AccountServiceClient::new(channel.clone());
    let mut ids = Vec::new();
    let mut lines = vec!["demo data:".to_owned()];
    for (owner, currency, kind, opening) in ACCOUNTS {
        let key = format!("seed-{owner}-{currency}");
        let account = accounts
            .create_account(pb::CreateAccountRequest {
                request_id: format!("{key}-open"),
                owner_id: (*owner).to_owned(),
                currency: (*currency).to_owned(),
                r#type: *kind as i32,
            })
            .await?
            .into_inner()
            .account
            .unwrap_or_default();
        if *opening > 0 {
            accounts
                .deposit(pb::DepositRequest {
                    request_id: format!("{key}-opening-deposit"),
                    account_id: account.account_id.clone(),
                    amount: Some(PositiveMoney {
                        currency: (*currency).to_owned(),
                        amount_minor: *opening,
                    }),
                    memo: "opening deposit".to_owned(),
                })
                .await?;
        }
        lines.push(format!(
            "  {:<12} {} {}  {}",
            owner, currency, account.masked_account_number, account.account_id
        ));
        ids.push(account.account_id);
    }

    let mut risk = RiskServiceClient::new(channel.clone());
    for (key, name, score, condition) in rules() {
        risk.create_rule(risk_pb::CreateRuleRequest {
            request_id: format!("seed-rule-{key}"),
            rule: Some(risk_pb::Rule {
                name: name.to_owned(),
                score,
                condition: Some(condition),
                ..Default::default()
            }),
        })
        .await?;
        lines.push(format!("  risk rule    {name} (score {score})"));
    }

    let mut transfers = TransactionServiceClient::new(channel.clone());
    let transfer = transfers
        .transfer(tx_pb::TransferRequest {
            request_id: "seed-transfer-alice-bob".to_owned(),
            from_account_id: ids[0].clone(),
            to_account_id: ids[1].clone(),
            amount: Some(PositiveMoney {
                currency: "EUR".to_owned(),
                amount_minor: 2_500,
            }),
            memo: "demo: lunch".to_owned(),
        })
        .await?
        .into_inner()
        .transfer
        .unwrap_or_default();
    lines.push(format!(
        "  transfer     alice → bob 25.00 EUR  {}",
        transfer.transfer_id
    ));

    let channel_for_commerce = channel.clone();
    let mut payments = payment_pb::payment_service_client::PaymentServiceClient::new(channel);
    let payment = payments
        .create_payment(payment_pb::CreatePaymentRequest {
            request_id: "seed-payment-acme-cn".to_owned(),
            merchant_account_id: ids[4].clone(),
            merchant_order_ref: "demo-order-1".to_owned(),
            amount: Some(PositiveMoney {
                currency: "CNY".to_owned(),
                amount_minor: 8_800,
            }),
            channel: payment_pb::Channel::WechatPay as i32,
            description: "demo: tea set".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .payment
        .unwrap_or_default();
    lines.push(format!(
        "  payment      88.00 CNY to acme-store over WeChat Pay (sandbox)  {}",
        payment.payment_id
    ));
    lines.push(catalogue(channel_for_commerce.clone()).await?);
    lines.push(stock(channel_for_commerce.clone()).await?);
    lines.push(cart(channel_for_commerce).await?);
    Ok(lines.join("\n"))
}

/// The demo catalogue: (SKU, name, brand, category, EUR cents, grams).
const CATALOGUE: &[(&str, &str, &str, &str, i64, i32)] = &[
    (
        "MUG-CLASSIC-WHT",
        "Classic mug, white",
        "Acme Home",
        "kitchen/mugs",
        1299,
        350,
    ),
    (
        "MUG-CLASSIC-BLU",
        "Classic mug, blue",
        "Acme Home",
        "kitchen/mugs",
        1299,
        350,
    ),
    (
        "MUG-TRAVEL-STEEL",
        "Travel mug, steel",
        "Acme Home",
        "kitchen/mugs",
        2499,
        420,
    ),
    (
        "CUP-SET-PORCELAIN",
        "Porcelain cup set of four",
        "Meissen Works",
        "kitchen/cups",
        5900,
        1200,
    ),
    (
        "TEAPOT-CAST-IRON",
        "Cast iron teapot, 0.8 l",
        "Nanbu Tekki",
        "kitchen/teapots",
        8900,
        1600,
    ),
    (
        "TEAPOT-GLASS",
        "Glass teapot with infuser, 1 l",
        "Clearbrew",
        "kitchen/teapots",
        3400,
        700,
    ),
    (
        "KETTLE-STEEL-1L",
        "Stovetop kettle, steel, 1 l",
        "Acme Home",
        "kitchen/kettles",
        3999,
        900,
    ),
    (
        "KETTLE-ELEC-GOOSE",
        "Electric gooseneck kettle",
        "Clearbrew",
        "kitchen/kettles",
        7900,
        1300,
    ),
    (
        "TEA-SENCHA-100G",
        "Sencha green tea, 100 g",
        "Yamamoto",
        "grocery/tea",
        1450,
        120,
    ),
    (
        "TEA-OOLONG-100G",
        "Tieguanyin oolong, 100 g",
        "Anxi Gardens",
        "grocery/tea",
        1890,
        120,
    ),
    (
        "TEA-EARLGREY-250G",
        "Earl Grey, 250 g",
        "Acme Pantry",
        "grocery/tea",
        1190,
        280,
    ),
    (
        "TEA-ROOIBOS-100G",
        "Rooibos, 100 g",
        "Cederberg",
        "grocery/tea",
        890,
        120,
    ),
    (
        "COFFEE-BEANS-1KG",
        "Espresso beans, 1 kg",
        "Acme Pantry",
        "grocery/coffee",
        2490,
        1050,
    ),
    (
        "COFFEE-GROUND-250G",
        "Filter coffee, ground, 250 g",
        "Acme Pantry",
        "grocery/coffee",
        790,
        270,
    ),
    (
        "HONEY-ACACIA-500G",
        "Acacia honey, 500 g",
        "Beehaven",
        "grocery/pantry",
        990,
        650,
    ),
    (
        "HEADPHONES-WL-BLK",
        "Wireless headphones, black",
        "Sonora",
        "electronics/audio",
        14900,
        260,
    ),
    (
        "HEADPHONES-WL-WHT",
        "Wireless headphones, white",
        "Sonora",
        "electronics/audio",
        14900,
        260,
    ),
    (
        "EARBUDS-ANC",
        "Noise-cancelling earbuds",
        "Sonora",
        "electronics/audio",
        19900,
        60,
    ),
    (
        "SPEAKER-BT-MINI",
        "Bluetooth speaker, mini",
        "Sonora",
        "electronics/audio",
        4900,
        310,
    ),
    (
        "LAMP-DESK-LED",
        "LED desk lamp",
        "Lumen",
        "home/lighting",
        5900,
        1100,
    ),
    (
        "LAMP-FLOOR-ARC",
        "Arc floor lamp",
        "Lumen",
        "home/lighting",
        18900,
        7800,
    ),
    (
        "BULB-SMART-E27",
        "Smart bulb, E27",
        "Lumen",
        "home/lighting",
        1990,
        80,
    ),
    (
        "CANDLE-SOY-CEDAR",
        "Soy candle, cedar",
        "Beehaven",
        "home/decor",
        1590,
        400,
    ),
    (
        "THROW-WOOL-GREY",
        "Wool throw, grey",
        "Highland Mills",
        "home/textiles",
        8900,
        1400,
    ),
    (
        "CUSHION-LINEN-SAND",
        "Linen cushion, sand",
        "Highland Mills",
        "home/textiles",
        2990,
        500,
    ),
    (
        "NOTEBOOK-A5-DOT",
        "Dotted notebook, A5",
        "Papier",
        "office/paper",
        1290,
        300,
    ),
    (
        "PEN-FOUNTAIN-BLK",
        "Fountain pen, black",
        "Papier",
        "office/writing",
        3490,
        40,
    ),
    (
        "PLANNER-2027",
        "Weekly planner 2027",
        "Papier",
        "office/paper",
        1990,
        450,
    ),
    (
        "BACKPACK-DAY-20L",
        "Daypack, 20 l",
        "Trailhead",
        "outdoor/bags",
        6900,
        800,
    ),
    (
        "BOTTLE-STEEL-750",
        "Insulated bottle, 750 ml",
        "Trailhead",
        "outdoor/hydration",
        2990,
        380,
    ),
];

/// Adds the demo catalogue (once: fixed request ids).
async fn catalogue(channel: client::MeshChannel) -> anyhow::Result<String> {
    let mut products = product_pb::product_service_client::ProductServiceClient::new(channel);
    for (sku, name, brand, category, cents, grams) in CATALOGUE {
        products
            .create_product(product_pb::CreateProductRequest {
                request_id: format!("seed-product-{sku}"),
                sku: (*sku).to_owned(),
                product: Some(product_pb::Product {
                    name: (*name).to_owned(),
                    description: format!("{name}, from {brand}."),
                    brand: (*brand).to_owned(),
                    category: (*category).to_owned(),
                    price: Some(PositiveMoney {
                        currency: "EUR".to_owned(),
                        amount_minor: *cents,
                    }),
                    weight_grams: *grams,
                    ..Default::default()
                }),
            })
            .await?;
    }
    let categories: std::collections::BTreeSet<&str> = CATALOGUE
        .iter()
        .map(|p| p.3.split('/').next().unwrap_or(p.3))
        .collect();
    Ok(format!(
        "  catalogue    {} products in {} categories (GET /v1/products?category=kitchen)",
        CATALOGUE.len(),
        categories.len()
    ))
}

/// A demo guest cart with two products (once: fixed request ids; it
/// expires after `--cart-ttl` like any other).
async fn cart(channel: client::MeshChannel) -> anyhow::Result<String> {
    let mut carts = cart_pb::cart_service_client::CartServiceClient::new(channel);
    let mut cart = None;
    for (sku, quantity) in [("TEAPOT-CAST-IRON", 1), ("TEA-SENCHA-100G", 2)] {
        cart = carts
            .add_item(cart_pb::AddItemRequest {
                request_id: format!("seed-cart-{sku}"),
                cart_id: "demo-cart".to_owned(),
                sku: sku.to_owned(),
                quantity,
            })
            .await?
            .into_inner()
            .cart;
    }
    let total = cart
        .and_then(|c| c.subtotal)
        .map(|m| {
            format!(
                "{}.{:02} {}",
                m.amount_minor / 100,
                m.amount_minor % 100,
                m.currency
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "  cart         demo-cart, 2 lines, {total} (GET /v1/carts/demo-cart)"
    ))
}

/// Demo stock: (SKU, warehouse, units). Two warehouses, so that a
/// reservation's warehouse choice shows.
const STOCK: &[(&str, &str, i64)] = &[
    ("MUG-CLASSIC-WHT", "eu-central", 120),
    ("MUG-CLASSIC-WHT", "eu-west", 40),
    ("TEA-SENCHA-100G", "eu-central", 300),
    ("TEA-OOLONG-100G", "eu-central", 80),
    ("KETTLE-STEEL-1L", "eu-central", 25),
    ("KETTLE-STEEL-1L", "eu-west", 10),
    ("TEAPOT-CAST-IRON", "eu-west", 12),
    ("CUP-SET-PORCELAIN", "eu-central", 30),
    ("HEADPHONES-WL-BLK", "eu-central", 50),
    ("LAMP-DESK-LED", "eu-west", 5),
];

/// Restocks the demo stock (once: fixed request ids).
async fn stock(channel: client::MeshChannel) -> anyhow::Result<String> {
    let mut inventory =
        inventory_pb::inventory_service_client::InventoryServiceClient::new(channel);
    for (sku, warehouse, units) in STOCK {
        inventory
            .restock_item(inventory_pb::RestockItemRequest {
                request_id: format!("seed-stock-{sku}-{warehouse}"),
                sku: (*sku).to_owned(),
                warehouse_id: (*warehouse).to_owned(),
                quantity: *units,
            })
            .await?;
    }
    Ok(format!(
        "  stock        {} SKUs in 2 warehouses (GET /v1/inventory/MUG-CLASSIC-WHT)",
        STOCK
            .iter()
            .map(|s| s.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    ))
}

/// Demo rules: large EUR transfers go to review, bursts add to the score.
fn rules() -> Vec<(&'static str, &'static str, i32, risk_pb::rule::Condition)> {
    use risk_pb::rule::Condition;
    vec![
        (
            "large-eur",
            "large EUR transfer (10,000.00 or more)",
            60,
            Condition::AmountThreshold(risk_pb::AmountThreshold {
                currency: "EUR".to_owned(),
                min_amount_minor: 1_000_000,
            }),
        ),
        (
            "burst",
            "more than 10 transfers a minute from one account",
            40,
            Condition::Velocity(risk_pb::Velocity {
                window_seconds: 60,
                max_count: 10,
                max_amount_minor: 0,
                currency: String::new(),
            }),
        ),
    ]
}
