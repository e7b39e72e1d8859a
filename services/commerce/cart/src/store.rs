//! Where carts live: a Redis hash per cart (`<ns>:cart:<id>`: `s:<SKU>` →
//! quantity, `_exp` → expiry in µs on the service's clock, `_owner`), with
//! the request ids of its adds in `<ns>:cart:<id>:req` and merge markers in
//! `<ns>:merged:<guest id>`; or the same in-process in embedded mode.
//!
//! Every change is one Lua script, so it is atomic in Redis: concurrent
//! adds of one SKU all count (HINCRBY semantics, not read-modify-write),
//! and a cap or owner check cannot race the change it guards. The
//! in-process store does the same steps under one lock with the functions
//! of [`crate::domain`]. Expiry is decided on the service's clock (`_exp`);
//! Redis's own EXPIRE, a little later, only collects the garbage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
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
    carts: HashMap<String, CartState>,
    merged: HashMap<String, i64>,
}

impl Store {
    /// Redis at `redis_url` under `namespace`, or in-process.
    pub async fn connect(namespace: &str, redis_url: Option<&str>) -> Result<Self, StoreError> {
        Ok(match redis_url {
            None => Store::Memory(Arc::default()),
            Some(url) => Store::Redis {
                conn: ConnectionManager::new(redis::Client::open(url)?).await?,
                namespace: namespace.to_owned(),
            },
        })
    }

    /// The cart `cart_id` as `now` sees it (empty when unknown or expired).
    pub async fn get(&self, cart_id: &str, now: i64) -> Result<CartState, StoreError> {
        match self {
            Store::Memory(memory) => {
                let memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                Ok(memory
                    .carts
                    .get(cart_id)
                    .cloned()
                    .unwrap_or_default()
                    .at(now))
            }
            Store::Redis { conn, namespace } => {
                let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(cart_key(namespace, cart_id))
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
        cart_id: &str,
        sku: &str,
        quantity: i64,
        request_id: &str,
        subject: Option<&str>,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now + ttl_micros;
        match self {
            Store::Memory(memory) => Ok(memory_change(memory, cart_id, now, |cart| {
                cart.add(sku, quantity, request_id, subject, expires_at)
            })),
            Store::Redis { conn, namespace } => {
                let key = cart_key(namespace, cart_id);
                let answer: Vec<String> = ADD
                    .key(&key)
                    .key(format!("{key}:req"))
                    .arg(sku)
                    .arg(quantity)
                    .arg(request_id)
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(subject.unwrap_or(""))
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Sets the quantity of `sku` (0 removes it).
    pub async fn set(
        &self,
        cart_id: &str,
        sku: &str,
        quantity: i64,
        subject: Option<&str>,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now + ttl_micros;
        match self {
            Store::Memory(memory) => Ok(memory_change(memory, cart_id, now, |cart| {
                cart.set(sku, quantity, subject, expires_at)
            })),
            Store::Redis { conn, namespace } => {
                let key = cart_key(namespace, cart_id);
                let answer: Vec<String> = SET
                    .key(&key)
                    .arg(sku)
                    .arg(quantity)
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(subject.unwrap_or(""))
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Empties the cart (its owner stays).
    pub async fn clear(&self, cart_id: &str, subject: Option<&str>, now: i64) -> Changed {
        match self {
            Store::Memory(memory) => Ok(memory_change(memory, cart_id, now, |cart| {
                cart.clear(subject)
            })),
            Store::Redis { conn, namespace } => {
                let key = cart_key(namespace, cart_id);
                let answer: Vec<String> = CLEAR
                    .key(&key)
                    .key(format!("{key}:req"))
                    .arg(now)
                    .arg(subject.unwrap_or(""))
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// Moves `guest_id`'s lines into `cart_id`, once.
    pub async fn merge(
        &self,
        cart_id: &str,
        guest_id: &str,
        subject: Option<&str>,
        now: i64,
        ttl_micros: i64,
    ) -> Changed {
        let expires_at = now + ttl_micros;
        if cart_id == guest_id {
            return Ok(self.get(cart_id, now).await.map(Ok)?.and_then(|cart| {
                cart.check_owner(subject)?;
                Ok(cart)
            }));
        }
        match self {
            Store::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                let target = memory
                    .carts
                    .get(cart_id)
                    .cloned()
                    .unwrap_or_default()
                    .at(now);
                if memory
                    .merged
                    .get(guest_id)
                    .is_some_and(|until| *until > now)
                {
                    return Ok(target.check_owner(subject).map(|()| target));
                }
                let guest = memory
                    .carts
                    .get(guest_id)
                    .cloned()
                    .unwrap_or_default()
                    .at(now);
                let mut merged = target;
                if let Err(refusal) = merged.merge(&guest, subject, expires_at) {
                    return Ok(Err(refusal));
                }
                memory.carts.insert(cart_id.to_owned(), merged.clone());
                memory.carts.remove(guest_id);
                memory.merged.insert(guest_id.to_owned(), expires_at);
                Ok(Ok(merged))
            }
            Store::Redis { conn, namespace } => {
                let key = cart_key(namespace, cart_id);
                let guest = cart_key(namespace, guest_id);
                let answer: Vec<String> = MERGE
                    .key(&key)
                    .key(&guest)
                    .key(format!("{guest}:req"))
                    .key(format!("{namespace}:merged:{guest_id}"))
                    .arg(now)
                    .arg(expires_at)
                    .arg(MAX_LINES)
                    .arg(MAX_QUANTITY)
                    .arg(redis_ttl(ttl_micros))
                    .arg(subject.unwrap_or(""))
                    .invoke_async(&mut conn.clone())
                    .await?;
                answer_of(answer)
            }
        }
    }

    /// A health check of Redis (PING); always fine in-process.
    pub fn ping(&self) -> BoxFuture<'static, Result<(), String>> {
        let conn = match self {
            Store::Memory(_) => return Box::pin(async { Ok(()) }),
            Store::Redis { conn, .. } => conn.clone(),
        };
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// One change of an in-process cart under the lock.
fn memory_change(
    memory: &Mutex<Memory>,
    cart_id: &str,
    now: i64,
    change: impl FnOnce(&mut CartState) -> Result<(), Refusal>,
) -> Result<CartState, Refusal> {
    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
    let mut cart = memory
        .carts
        .get(cart_id)
        .cloned()
        .unwrap_or_default()
        .at(now);
    change(&mut cart)?;
    memory.carts.insert(cart_id.to_owned(), cart.clone());
    Ok(cart)
}

fn cart_key(namespace: &str, cart_id: &str) -> String {
    format!("{namespace}:cart:{cart_id}")
}

/// Redis's own expiry: the cart's, plus a grace, in whole seconds.
fn redis_ttl(ttl_micros: i64) -> i64 {
    ttl_micros.div_euclid(1_000_000).max(1) + GRACE_SECS
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
        } else if field == "_owner" {
            cart.owner = Some(value);
        }
    }
    cart
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
            Ok(Err(Refusal::from_code(reason).unwrap_or(Refusal::NotYours)))
        }
        _ => Err(StoreError(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected cart script answer",
        )))),
    }
}

/// The steps every script starts with: an expired cart (on the service's
/// clock) is deleted, and a cart of another owner is refused.
const PRELUDE: &str = r"
local function fresh(cart, extra, now)
  local e = tonumber(redis.call('HGET', cart, '_exp') or '0')
  if e > 0 and e <= now then
    redis.call('DEL', cart)
    if extra then redis.call('DEL', extra) end
  end
end
local function owner_ok(cart, subject)
  local owner = redis.call('HGET', cart, '_owner')
  return (not owner) or subject == '' or owner == subject
end
local function lines(cart)
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', cart)) do
    if string.sub(f, 1, 2) == 's:' then n = n + 1 end
  end
  return n
end
local function touch(cart, exp, ttl, subject)
  redis.call('HSET', cart, '_exp', exp)
  if subject ~= '' and not redis.call('HGET', cart, '_owner') then
    redis.call('HSET', cart, '_owner', subject)
  end
  redis.call('EXPIRE', cart, ttl)
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
/// max lines, max quantity, Redis TTL, subject.
static ADD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs = KEYS[1], KEYS[2]
local now = tonumber(ARGV[4])
fresh(cart, reqs, now)
if not owner_ok(cart, ARGV[9]) then return {'err', 'NOT_FOUND'} end
if redis.call('SISMEMBER', reqs, ARGV[3]) == 1 then return answer(cart) end
local field = 's:' .. ARGV[1]
local current = tonumber(redis.call('HGET', cart, field) or '0')
if current == 0 and lines(cart) >= tonumber(ARGV[6]) then return {'err', 'CART_FULL'} end
if current + tonumber(ARGV[2]) > tonumber(ARGV[7]) then return {'err', 'QUANTITY_CAP'} end
redis.call('HINCRBY', cart, field, tonumber(ARGV[2]))
redis.call('SADD', reqs, ARGV[3])
redis.call('EXPIRE', reqs, ARGV[8])
touch(cart, ARGV[5], ARGV[8], ARGV[9])
return answer(cart)
",
    )
});

/// KEYS: cart. ARGV: sku, quantity, now, expiry, max lines, max quantity,
/// Redis TTL, subject.
static SET: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart = KEYS[1]
fresh(cart, cart .. ':req', tonumber(ARGV[3]))
if not owner_ok(cart, ARGV[8]) then return {'err', 'NOT_FOUND'} end
local field = 's:' .. ARGV[1]
local quantity = tonumber(ARGV[2])
if quantity == 0 then
  redis.call('HDEL', cart, field)
else
  if not redis.call('HGET', cart, field) and lines(cart) >= tonumber(ARGV[5]) then
    return {'err', 'CART_FULL'}
  end
  if quantity > tonumber(ARGV[6]) then return {'err', 'QUANTITY_CAP'} end
  redis.call('HSET', cart, field, quantity)
end
touch(cart, ARGV[4], ARGV[7], ARGV[8])
return answer(cart)
",
    )
});

/// KEYS: cart, requests. ARGV: now, subject.
static CLEAR: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, reqs = KEYS[1], KEYS[2]
fresh(cart, reqs, tonumber(ARGV[1]))
if not owner_ok(cart, ARGV[2]) then return {'err', 'NOT_FOUND'} end
for _, f in ipairs(redis.call('HKEYS', cart)) do
  if string.sub(f, 1, 2) == 's:' then redis.call('HDEL', cart, f) end
end
redis.call('DEL', reqs)
return answer(cart)
",
    )
});

/// KEYS: cart, guest, guest requests, merge marker. ARGV: now, expiry, max
/// lines, max quantity, Redis TTL, subject.
static MERGE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
local cart, guest, guest_reqs, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
fresh(cart, cart .. ':req', now)
fresh(guest, guest_reqs, now)
if not owner_ok(cart, ARGV[6]) then return {'err', 'NOT_FOUND'} end
if redis.call('EXISTS', marker) == 1 then return answer(cart) end
if not owner_ok(guest, ARGV[6]) then return {'err', 'NOT_FOUND'} end
local count = lines(cart)
local fields = redis.call('HGETALL', guest)
for i = 1, #fields, 2 do
  local f, v = fields[i], tonumber(fields[i + 1])
  if string.sub(f, 1, 2) == 's:' then
    local current = tonumber(redis.call('HGET', cart, f) or '0')
    if current > 0 or count < tonumber(ARGV[3]) then
      if current == 0 then count = count + 1 end
      redis.call('HSET', cart, f, math.min(current + v, tonumber(ARGV[4])))
    end
  end
end
redis.call('DEL', guest, guest_reqs)
redis.call('SET', marker, '1', 'EX', ARGV[5])
touch(cart, ARGV[2], ARGV[5], ARGV[6])
return answer(cart)
",
    )
});
