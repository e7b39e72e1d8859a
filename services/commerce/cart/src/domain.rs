//! A cart as a value and the rules of changing it: caps, the sliding
//! expiry, merging, and pricing from the catalogue. Pure. The
//! in-process store applies these functions; the Redis store's Lua scripts
//! do the same steps atomically in Redis (the same tests run on both).

use std::collections::{BTreeMap, BTreeSet};

/// Lines a cart may hold.
pub const MAX_LINES: usize = 100;
/// Units one line may hold.
pub const MAX_QUANTITY: i64 = 100;

/// A cart as stored: quantities by SKU, no prices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CartState {
    pub lines: BTreeMap<String, i64>,
    /// Microseconds; 0 for a cart never written.
    pub expires_at: i64,
    /// Request ids of the adds applied (a retry adds nothing).
    pub requests: BTreeSet<String>,
    /// The currency of its lines' prices; `None` while it has no lines.
    pub currency: Option<String>,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A new line past [`MAX_LINES`].
    Full,
    /// A line past [`MAX_QUANTITY`].
    QuantityCap,
    /// A product priced in another currency than the cart's lines.
    CurrencyMismatch,
}

impl Refusal {
    /// The reason, as the Redis scripts return it.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Full => "CART_FULL",
            Refusal::QuantityCap => "QUANTITY_CAP",
            Refusal::CurrencyMismatch => "CURRENCY_MISMATCH",
        }
    }

    /// From a script's answer.
    pub fn from_code(code: &str) -> Option<Refusal> {
        match code {
            "CART_FULL" => Some(Refusal::Full),
            "QUANTITY_CAP" => Some(Refusal::QuantityCap),
            "CURRENCY_MISMATCH" => Some(Refusal::CurrencyMismatch),
            _ => None,
        }
    }
}

impl CartState {
    /// The cart as `now` sees it: an expired one is empty.
    pub fn at(self, now: i64) -> CartState {
        if self.expires_at > 0 && self.expires_at <= now {
            CartState::default()
        } else {
            self
        }
    }

    /// Whether the cart holds nothing worth keeping.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.requests.is_empty()
    }

    fn fits_line(&self, sku: &str) -> Result<(), Refusal> {
        if self.lines.contains_key(sku) || self.lines.len() < MAX_LINES {
            Ok(())
        } else {
            Err(Refusal::Full)
        }
    }

    /// Refuses a product priced in `currency` unless the cart's lines are
    /// priced in it too (or there are none).
    fn same_currency(&self, currency: &str) -> Result<(), Refusal> {
        match &self.currency {
            Some(mine) if mine != currency => Err(Refusal::CurrencyMismatch),
            _ => Ok(()),
        }
    }

    /// Adds `quantity` of `sku`, priced in `currency`, once per
    /// `request_id`.
    pub fn add(
        &mut self,
        sku: &str,
        quantity: i64,
        currency: &str,
        request_id: &str,
        expires_at: i64,
    ) -> Result<(), Refusal> {
        if self.requests.contains(request_id) {
            return Ok(());
        }
        self.same_currency(currency)?;
        self.fits_line(sku)?;
        let new = self.lines.get(sku).copied().unwrap_or(0) + quantity;
        if new > MAX_QUANTITY {
            return Err(Refusal::QuantityCap);
        }
        self.lines.insert(sku.to_owned(), new);
        self.requests.insert(request_id.to_owned());
        self.currency = Some(currency.to_owned());
        self.expires_at = expires_at;
        Ok(())
    }

    /// Sets the quantity of `sku` (priced in `currency`); 0 removes the
    /// line.
    pub fn set(
        &mut self,
        sku: &str,
        quantity: i64,
        currency: &str,
        expires_at: i64,
    ) -> Result<(), Refusal> {
        if quantity == 0 {
            self.lines.remove(sku);
            if self.lines.is_empty() {
                self.currency = None;
            }
        } else {
            self.same_currency(currency)?;
            self.fits_line(sku)?;
            if quantity > MAX_QUANTITY {
                return Err(Refusal::QuantityCap);
            }
            self.lines.insert(sku.to_owned(), quantity);
            self.currency = Some(currency.to_owned());
        }
        self.expires_at = expires_at;
        Ok(())
    }

    /// Removes every line (the request ids stay: a late retry of an add
    /// from before the clear adds nothing).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.currency = None;
    }

    /// Adds the lines of `guest` (sums, each clamped to the per-line cap;
    /// lines past the line cap are dropped); refused when the two carts
    /// are in different currencies.
    pub fn merge(&mut self, guest: &CartState, expires_at: i64) -> Result<(), Refusal> {
        if let Some(theirs) = &guest.currency {
            self.same_currency(theirs)?;
        }
        for (sku, quantity) in &guest.lines {
            if self.fits_line(sku).is_err() {
                continue;
            }
            let new = (self.lines.get(sku).copied().unwrap_or(0) + quantity).min(MAX_QUANTITY);
            self.lines.insert(sku.clone(), new);
        }
        if self.currency.is_none() {
            self.currency = guest.currency.clone();
        }
        self.expires_at = expires_at;
        Ok(())
    }
}

/// What the catalogue says of a SKU now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub name: String,
    pub currency: String,
    pub amount_minor: i64,
}

/// A line priced now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i64,
    /// `None`: the catalogue no longer has it.
    pub price: Option<Price>,
    /// Priced, in the cart's currency: counted in the subtotal. (A
    /// product whose price moved to another currency since it was added
    /// shows its price but is not counted, and cannot be bought with the
    /// cart as it is.)
    pub available: bool,
}

/// A cart priced now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedCart {
    pub lines: Vec<PricedLine>,
    /// (currency, minor units) over the priced lines in the cart's
    /// currency (the first priced line's).
    pub subtotal: Option<(String, i64)>,
    pub item_count: i64,
    pub expires_at: i64,
}

/// Prices `cart` with `prices` (by SKU).
pub fn price(cart: &CartState, prices: &BTreeMap<String, Price>) -> PricedCart {
    // The cart's currency, or (a cart from before it kept one) its first
    // priced line's.
    let currency = cart.currency.clone().or_else(|| {
        cart.lines
            .keys()
            .find_map(|sku| prices.get(sku).map(|p| p.currency.clone()))
    });
    let lines: Vec<PricedLine> = cart
        .lines
        .iter()
        .map(|(sku, quantity)| {
            let price = prices.get(sku).cloned();
            PricedLine {
                sku: sku.clone(),
                quantity: *quantity,
                available: price
                    .as_ref()
                    .is_some_and(|p| Some(&p.currency) == currency.as_ref()),
                price,
            }
        })
        .collect();
    let subtotal = currency.map(|currency| {
        let sum = lines
            .iter()
            .filter(|l| l.available)
            .filter_map(|l| l.price.as_ref().map(|p| (p, l.quantity)))
            .fold(0i64, |sum, (p, q)| {
                sum.saturating_add(p.amount_minor.saturating_mul(q))
            });
        (currency, sum)
    });
    PricedCart {
        item_count: lines.iter().map(|l| l.quantity).sum(),
        lines,
        subtotal,
        expires_at: cart.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_count_once_per_request_and_respect_the_caps() {
        let mut cart = CartState::default();
        cart.add("A", 2, "EUR", "r1", 100).unwrap();
        cart.add("A", 2, "EUR", "r1", 100).unwrap();
        assert_eq!(cart.lines["A"], 2, "a retry adds nothing");
        assert_eq!(
            cart.add("A", 99, "EUR", "r2", 100),
            Err(Refusal::QuantityCap)
        );
        assert_eq!(cart.lines["A"], 2, "a refusal changes nothing");
        for i in 1..MAX_LINES {
            cart.add(&format!("S{i}"), 1, "EUR", &format!("x{i}"), 100)
                .unwrap();
        }
        assert_eq!(
            cart.add("ONE-TOO-MANY", 1, "EUR", "r3", 100),
            Err(Refusal::Full)
        );
        cart.add("A", 1, "EUR", "r4", 100).unwrap();
        assert_eq!(cart.lines["A"], 3, "an existing line still grows");
    }

    #[test]
    fn a_cart_keeps_to_one_currency_until_it_is_empty() {
        let mut cart = CartState::default();
        cart.add("A", 1, "EUR", "r1", 100).unwrap();
        assert_eq!(
            cart.add("Y", 1, "CNY", "r2", 100),
            Err(Refusal::CurrencyMismatch)
        );
        assert_eq!(cart.set("Y", 1, "CNY", 100), Err(Refusal::CurrencyMismatch));
        cart.set("A", 0, "EUR", 100).unwrap();
        cart.add("Y", 1, "CNY", "r3", 100).unwrap();
        let mut guest = CartState::default();
        guest.add("B", 1, "EUR", "g1", 100).unwrap();
        assert_eq!(cart.merge(&guest, 100), Err(Refusal::CurrencyMismatch));
        cart.clear();
        cart.merge(&guest, 100).unwrap();
        assert_eq!(cart.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn expiry_slides_and_an_expired_cart_is_empty() {
        let mut cart = CartState::default();
        cart.add("A", 1, "EUR", "r1", 100).unwrap();
        cart.set("A", 3, "EUR", 200).unwrap();
        assert_eq!(cart.expires_at, 200, "every write moves the expiry");
        assert_eq!(cart.clone().at(199).lines["A"], 3);
        assert_eq!(cart.at(200), CartState::default());
    }

    #[test]
    fn merging_sums_clamps_and_replaying_it_is_the_stores_business() {
        let mut user = CartState::default();
        user.add("A", 1, "EUR", "u1", 100).unwrap();
        user.add("C", 3, "EUR", "u2", 100).unwrap();
        let mut guest = CartState::default();
        guest.add("A", 2, "EUR", "g1", 50).unwrap();
        guest.add("B", 1, "EUR", "g2", 50).unwrap();
        guest.add("C", 99, "EUR", "g3", 50).unwrap();
        user.merge(&guest, 300).unwrap();
        assert_eq!(
            user.lines,
            BTreeMap::from([("A".into(), 3), ("B".into(), 1), ("C".into(), MAX_QUANTITY)])
        );
        assert_eq!(user.expires_at, 300);
    }

    #[test]
    fn a_cart_is_priced_in_its_currency_from_the_catalogue_now() {
        let mut cart = CartState::default();
        cart.add("A", 2, "EUR", "r1", 100).unwrap();
        cart.add("B", 1, "EUR", "r2", 100).unwrap();
        cart.add("GONE", 4, "EUR", "r3", 100).unwrap();
        let p = |amount_minor| Price {
            name: "x".into(),
            currency: "EUR".into(),
            amount_minor,
        };
        let prices = BTreeMap::from([("A".to_owned(), p(250)), ("B".to_owned(), p(1000))]);
        let priced = price(&cart, &prices);
        assert_eq!(priced.subtotal, Some(("EUR".to_owned(), 1500)));
        assert_eq!(priced.item_count, 7);
        assert_eq!(
            priced.lines[2].price, None,
            "a removed product stays, unpriced"
        );
    }
}
