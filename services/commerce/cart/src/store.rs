//! Where carts live: a Redis hash per cart (`s:<SKU>` → quantity, `_exp` →
//! expiry in µs on the service's clock), the request ids of its adds in a
//! set beside it, and merge markers; or the same in-process in embedded
//! mode.
//!
//! Cart ids are scoped: a signed-in user's ids are theirs alone (the key
//! holds the subject), a guest's live in the guest scope. Another user's
//! "ana-cart" is another cart, so no call of theirs can reach Ana's data,
//! learn that it exists, or claim the id before her. Keys are
//! `<ns>:cart:<len>:<scope>:<id>` and `<ns>:cartreq:<len>:<scope>:<id>`
//! (the length makes any scope and id unambiguous), markers
//! `<ns>:merged:<guest id>`.
//!
//! Every change is one Lua script, so it is atomic in Redis: concurrent
//! adds of one SKU all count (HINCRBY semantics, not read-modify-write),
//! and a cap check cannot race the change it guards. The
//! in-process store does the same steps under one lock with the functions
//! of [`crate::domain`]. Expiry is decided on the service's clock (`_exp`);
//! Redis's own EXPIRE, a little later, only collects the garbage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;

use crate::domain::{CartState, MAX_LINES, MAX_QUANTITY, Refusal};

/// The store failed (Redis down).
#[derive(Debug, thiserror::Error)]
#[error("cart store: {0}")]
pub struct StoreError(#[from] redis::RedisError);

/// What a change did.
pub type Changed = Result<Result<CartState, Refusal>, StoreError>;

/// How long Redis keeps a cart past its expiry before collecting it.
const GRACE_SECS: i64 = 60;

/// The carts.
#[derive(Clone)]
pub enum Store {
    /// Embedded mode: carts and merge markers (with their expiry) in memory.
    Memory(Arc<Mutex<Memory>>),
    /// Redis under a namespace.
    Redis {
        conn: ConnectionManager,
        namespace: String,
    },
}

/// The in-process carts.
#[derive(Default)]
pub struct Memory {
    /// By (scope, cart id).
    carts: HashMap<(String, String), CartState>,
    merged: HashMap<String, i64>,
    /// The size after the last sweep.
    swept_at: usize,
}

impl Memory {
    /// Drops what expired, once the maps have doubled since the last sweep
    /// (and hold at least [`SWEEP_AT`]): amortised, never a scan per write.
    fn sweep(&mut self, now: i64) {
        let size = self.carts.len() + self.merged.len();
        if size > SWEEP_AT.max(self.swept_at * 2) {
            self.carts.retain(|_, cart| cart.expires_at > now);
            self.merged.retain(|_, until| *until > now);
            self.swept_at = self.carts.len() + self.merged.len();
        }
    }
}

/// In-process carts are swept of expired ones past this many.
const SWEEP_AT: usize = 100_000;

/// Whose cart ids: a signed-in user's (their subject), or a guest's ("").
pub type Scope<'a> = &'a str;

impl Store {
    /// Redis at `redis_url` under `namespace`, or in-process.
    pub async fn connect(namespace: &str, redis_url: Option<&str>) -> Result<Self, StoreError> {
        Ok(match redis_url {
            None => Store::Memory(Arc::default()),
            Some(url) => Store::Redis {
                conn: meshwork_runtime::redis_conn::connect(url).await?,
                namespace: namespace.to_owned(),
            },
        })
    }

    /// The cart as `now` sees it (empty when unknown or expired).
    pub async fn get(
        &self,
        scope: Scope<'_>,
        cart_id: &str,
        now: i64,
    ) -> Result<CartState, StoreError> {
        match self {
            Store::Memory(memory) => {
                let memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                let key = (scope.to_owned(), cart_id.to_owned());
                Ok(memory.carts.get(&key).cloned().unwrap_or_default().at(now))
            }
            Store::Redis { conn, namespace } => {
                let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(cart_key(namespace, scope, cart_id))
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(state_of(fields).at(now))
            }
        }
    }

    /// Adds `quantity` of `sku` (once per `request_id`).
    #[allow(clippy::too_many_arguments)]
    pub async fn add(
        &self,
        scope: Scope<'_>,
        cart_id: &str,
        sku: &str,
        quantity: i64,
        currency: &str,
        request_id: &str,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now.saturating_add(ttl_micros);
        match self {
            Store::Memory(memory) => Ok(memory_change(memory, scope, cart_id, now, |cart| {
                cart.add(sku, quantity, currency, request_id, expires_at)
            })),
            Store::Redis { conn, namespace } => {
                let answer: Vec<String> = ADD
                    .key(cart_key(namespace, scope, cart_id))
                    .key(requests_key(namespace, scope, cart_id))
                    .arg(sku)
                    .arg(quantity)
                    .arg(request_id)
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(currency)
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Sets the quantity of `sku` (0 removes it).
    #[allow(clippy::too_many_arguments)]
    pub async fn set(
        &self,
        scope: Scope<'_>,
        cart_id: &str,
        sku: &str,
        quantity: i64,
        currency: &str,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now.saturating_add(ttl_micros);
        match self {
            Store::Memory(memory) => Ok(memory_change(memory, scope, cart_id, now, |cart| {
                cart.set(sku, quantity, currency, expires_at)
            })),
            Store::Redis { conn, namespace } => {
                let answer: Vec<String> = SET
                    .key(cart_key(namespace, scope, cart_id))
                    .key(requests_key(namespace, scope, cart_id))
                    .arg(sku)
                    .arg(quantity)
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(currency)
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Empties the cart.
    pub async fn clear(&self, scope: Scope<'_>, cart_id: &str, now: i64) -> Changed {
        match self {
            Store::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                let key = (scope.to_owned(), cart_id.to_owned());
                let Some(cart) = memory.carts.get_mut(&key) else {
                    return Ok(Ok(CartState::default()));
                };
                let mut fresh = std::mem::take(cart).at(now);
                fresh.clear();
                *cart = fresh.clone();
                Ok(Ok(fresh))
            }
            Store::Redis { conn, namespace } => {
                let answer: Vec<String> = CLEAR
                    .key(cart_key(namespace, scope, cart_id))
                    .key(requests_key(namespace, scope, cart_id))
                    .arg(now)
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Moves the guest cart `guest_id`'s lines into `cart_id` (of `scope`),
    /// once.
    pub async fn merge(
        &self,
        scope: Scope<'_>,
        cart_id: &str,
        guest_id: &str,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now.saturating_add(ttl_micros);
        if scope.is_empty() && cart_id == guest_id {
            return Ok(Ok(self.get(scope, cart_id, now).await?));
        }
        match self {
            Store::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                memory.sweep(now);
                let key = (scope.to_owned(), cart_id.to_owned());
                let guest_key = (String::new(), guest_id.to_owned());
                let mut target = memory.carts.get(&key).cloned().unwrap_or_default().at(now);
                if memory
                    .merged
                    .get(guest_id)
                    .is_some_and(|until| *until > now)
                {
                    return Ok(Ok(target));
                }
                let guest = memory
                    .carts
                    .get(&guest_key)
                    .cloned()
                    .unwrap_or_default()
                    .at(now);
                if guest.lines.is_empty() {
                    return Ok(Ok(target));
                }
                if let Err(refusal) = target.merge(&guest, expires_at) {
                    return Ok(Err(refusal));
                }
                memory.carts.insert(key, target.clone());
                memory.carts.remove(&guest_key);
                memory.merged.insert(
                    guest_id.to_owned(),
                    expires_at.saturating_add(GRACE_SECS * 1_000_000),
                );
                Ok(Ok(target))
            }
            Store::Redis { conn, namespace } => {
                let answer: Vec<String> = MERGE
                    .key(cart_key(namespace, scope, cart_id))
                    .key(requests_key(namespace, scope, cart_id))
                    .key(cart_key(namespace, "", guest_id))
                    .key(requests_key(namespace, "", guest_id))
                    .key(format!("{namespace}:merged:{guest_id}"))
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(GRACE_SECS * 1_000_000)
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// The health probe of the Redis holding the carts; none in-process.
    pub fn probe(&self) -> Option<std::sync::Arc<dyn meshwork_runtime::health::Probe>> {
        match self {
            Store::Memory(_) => None,
            Store::Redis { conn, .. } => Some(meshwork_runtime::redis_conn::probe(
                "cart store",
                conn.clone(),
            )),
        }
    }
}

/// One change of an in-process cart under the lock.
fn memory_change(
    memory: &Mutex<Memory>,
    scope: Scope<'_>,
    cart_id: &str,
    now: i64,
    change: impl FnOnce(&mut CartState) -> Result<(), Refusal>,
) -> Result<CartState, Refusal> {
    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
    memory.sweep(now);
    let key = (scope.to_owned(), cart_id.to_owned());
    let mut cart = memory.carts.get(&key).cloned().unwrap_or_default().at(now);
    change(&mut cart)?;
    memory.carts.insert(key, cart.clone());
    Ok(cart)
}

fn cart_key(namespace: &str, scope: Scope<'_>, cart_id: &str) -> String {
    format!("{namespace}:cart:{}:{scope}:{cart_id}", scope.len())
}

fn requests_key(namespace: &str, scope: Scope<'_>, cart_id: &str) -> String {
    format!("{namespace}:cartreq:{}:{scope}:{cart_id}", scope.len())
}

/// Redis's own expiry: the cart's, plus a grace, in whole seconds.
fn redis_ttl(ttl_micros: i64) -> i64 {
    ttl_micros
        .div_euclid(1_000_000)
        .max(1)
        .saturating_add(GRACE_SECS)
}

/// A cart from its hash's fields.
fn state_of(fields: Vec<(String, String)>) -> CartState {
    let mut cart = CartState::default();
    for (field, value) in fields {
        if let Some(sku) = field.strip_prefix("s:") {
            if let Ok(quantity) = value.parse() {
                cart.lines.insert(sku.to_owned(), quantity);
            }
        } else if field == "_exp" {
            cart.expires_at = value.parse().unwrap_or(0);
        } else if field == "_cur" {
            cart.currency = Some(value);
        }
    }
    cart
}

fn unexpected(what: &'static str) -> StoreError {
    StoreError(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        what,
    )))
}

/// A script's answer: `["ok", field, value, ...]` (the cart's hash after
/// the change) or `["err", reason]`.
fn answer_of(answer: Vec<String>) -> Changed {
    match answer.split_first() {
        Some((status, rest)) if status == "ok" => {
            let fields = rest
                .chunks(2)
                .filter_map(|pair| match pair {
                    [field, value] => Some((field.clone(), value.clone())),
                    _ => None,
                })
                .collect();
            Ok(Ok(state_of(fields)))
        }
        Some((status, rest)) if status == "err" => {
            let reason = rest.first().map(String::as_str).unwrap_or("");
            Refusal::from_code(reason)
                .map(Err)
                .ok_or_else(|| unexpected("unknown cart script refusal"))
        }
        _ => Err(unexpected("unexpected cart script answer")),
    }
}

/// The steps every script shares: an expired cart (on the service's clock)
/// is deleted with its request ids, and every write moves the expiry of
/// both.
const PRELUDE: &str = r"
local function fresh(cart, reqs, now)
  local e = tonumber(redis.call('HGET', cart, '_exp') or '0')
  if e > 0 and e <= now then redis.call('DEL', cart, reqs) end
end
local function lines(cart)
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', cart)) do
    if string.sub(f, 1, 2) == 's:' then n = n + 1 end
  end
  return n
end
local function bytewise(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function same_currency(cart, currency)
  local mine = redis.call('HGET', cart, '_cur')
  return (not mine) or mine == currency
end
local function touch(cart, reqs, exp, ttl)
  redis.call('HSET', cart, '_exp', exp)
  redis.call('EXPIRE', cart, ttl)
  if redis.call('EXISTS', reqs) == 1 then redis.call('EXPIRE', reqs, ttl) end
end
local function answer(cart)
  local out = {'ok'}
  for _, v in ipairs(redis.call('HGETALL', cart)) do table.insert(out, v) end
  return out
end
";

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PRELUDE}\n{body}"))
}

/// KEYS: cart, requests. ARGV: sku, quantity, request id, now, expiry,
/// max lines, max quantity, Redis TTL, currency.
static ADD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs = KEYS[1], KEYS[2]
fresh(cart, reqs, tonumber(ARGV[4]))
if redis.call('SISMEMBER', reqs, ARGV[3]) == 1 then return answer(cart) end
if not same_currency(cart, ARGV[9]) then return {'err', 'CURRENCY_MISMATCH'} end
local field = 's:' .. ARGV[1]
local current = tonumber(redis.call('HGET', cart, field) or '0')
if current == 0 and lines(cart) >= tonumber(ARGV[6]) then return {'err', 'CART_FULL'} end
if current + tonumber(ARGV[2]) > tonumber(ARGV[7]) then return {'err', 'QUANTITY_CAP'} end
redis.call('HINCRBY', cart, field, tonumber(ARGV[2]))
redis.call('HSET', cart, '_cur', ARGV[9])
redis.call('SADD', reqs, ARGV[3])
touch(cart, reqs, ARGV[5], ARGV[8])
return answer(cart)
",
    )
});

/// KEYS: cart, requests. ARGV: sku, quantity, now, expiry, max lines, max
/// quantity, Redis TTL, currency.
static SET: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs = KEYS[1], KEYS[2]
fresh(cart, reqs, tonumber(ARGV[3]))
local field = 's:' .. ARGV[1]
local quantity = tonumber(ARGV[2])
if quantity == 0 then
  redis.call('HDEL', cart, field)
  if lines(cart) == 0 then redis.call('HDEL', cart, '_cur') end
else
  if not same_currency(cart, ARGV[8]) then return {'err', 'CURRENCY_MISMATCH'} end
  if not redis.call('HGET', cart, field) and lines(cart) >= tonumber(ARGV[5]) then
    return {'err', 'CART_FULL'}
  end
  if quantity > tonumber(ARGV[6]) then return {'err', 'QUANTITY_CAP'} end
  redis.call('HSET', cart, field, quantity, '_cur', ARGV[8])
end
touch(cart, reqs, ARGV[4], ARGV[7])
return answer(cart)
",
    )
});

/// KEYS: cart, requests. ARGV: now. The request ids stay: a late retry of
/// an add from before the clear adds nothing.
static CLEAR: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs = KEYS[1], KEYS[2]
fresh(cart, reqs, tonumber(ARGV[1]))
for _, f in ipairs(redis.call('HKEYS', cart)) do
  if string.sub(f, 1, 2) == 's:' then redis.call('HDEL', cart, f) end
end
redis.call('HDEL', cart, '_cur')
return answer(cart)
",
    )
});

/// KEYS: cart, its requests, guest, its requests, merge marker. ARGV: now,
/// expiry, max lines, max quantity, Redis TTL, grace (µs). Guest lines are
/// taken in SKU byte order (as the in-process store does; Lua's own string
/// order follows the server's locale), so the same ones are dropped past
/// the line cap.
static MERGE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs, guest, guest_reqs, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
fresh(cart, reqs, now)
fresh(guest, guest_reqs, now)
if tonumber(redis.call('GET', marker) or '0') > now then return answer(cart) end
local skus = {}
for _, f in ipairs(redis.call('HKEYS', guest)) do
  if string.sub(f, 1, 2) == 's:' then table.insert(skus, f) end
end
if #skus == 0 then return answer(cart) end
local theirs = redis.call('HGET', guest, '_cur')
if theirs and not same_currency(cart, theirs) then return {'err', 'CURRENCY_MISMATCH'} end
if theirs then redis.call('HSET', cart, '_cur', theirs) end
table.sort(skus, bytewise)
local count = lines(cart)
for _, f in ipairs(skus) do
  local v = tonumber(redis.call('HGET', guest, f))
  local current = tonumber(redis.call('HGET', cart, f) or '0')
  if current > 0 or count < tonumber(ARGV[3]) then
    if current == 0 then count = count + 1 end
    redis.call('HSET', cart, f, math.min(current + v, tonumber(ARGV[4])))
  end
end
redis.call('DEL', guest, guest_reqs)
-- The marker holds its end on the service's clock; EX only collects it.
redis.call('SET', marker, tonumber(ARGV[2]) + tonumber(ARGV[6]), 'EX', ARGV[5])
touch(cart, reqs, ARGV[2], ARGV[5])
return answer(cart)
",
    )
});
