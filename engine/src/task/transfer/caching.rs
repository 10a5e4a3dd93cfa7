//! The transfer's side of the URL cache: whether a request is answered from the cache, revalidated,
//! or sent; and, for a response the cache may keep, the body gathered and offered to the delegate
//! (`will_cache_response`) before it is stored.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use courier_delegates::{
    CachePolicy as RequestCachePolicy, CachedResponse, Callback, Error, ErrorCode, FetchType,
    Response, TaskInfo,
};
use http_cache_semantics::{AfterResponse, BeforeRequest, CachePolicy, RequestLike, ResponseLike};
use tokio::sync::oneshot;

use super::{Halt, Head, Run, TaskMsg, unless_stopped};
use crate::context::SessionContext;
use crate::stores::cache::{self, Entry};

/// What the cache says about a request.
///
/// Small: the plan lives in every transfer's future, cache or not.
pub(super) enum Plan {
    /// Answer from the cache.
    Serve(Box<CachedResponse>),
    /// Send the request with the cache's validators; a 304 is answered from the cache. The entry
    /// is the cache's own, not a copy.
    Revalidate(Arc<Entry>),
    /// Send the request.
    Network,
}

/// A response the cache may keep, and its body so far.
pub(super) struct Candidate {
    policy: CachePolicy,
    response: Response,
    body: BytesMut,
    limit: usize,
}

/// A request's head as the cache policy reads it, without copying its header map.
struct RequestHead<'a>(&'a Head);

impl RequestLike for RequestHead<'_> {
    fn uri(&self) -> http::Uri {
        self.0.uri.clone()
    }

    fn is_same_uri(&self, other: &http::Uri) -> bool {
        self.0.uri == *other
    }

    fn method(&self) -> &http::Method {
        &self.0.method
    }

    fn headers(&self) -> &http::HeaderMap {
        &self.0.headers
    }
}

/// A response's head as the cache policy reads it, without copying its header map.
struct ResponseHead<'a>(&'a Response);

impl ResponseLike for ResponseHead<'_> {
    fn status(&self) -> http::StatusCode {
        self.0.status()
    }

    fn headers(&self) -> &http::HeaderMap {
        self.0.headers()
    }
}

impl Run {
    /// Answers from the URL cache: the same response, gate and delivery as over the network.
    pub(super) async fn serve_cached(&mut self, cached: CachedResponse) -> Result<(), Halt> {
        let now = std::time::Instant::now();
        self.open_transaction(FetchType::LocalCache, Some(now), |t| {
            t.response_start = Some(now);
            t.status = Some(cached.response.status().as_u16());
        });
        self.present(cached.response).await?;
        self.deliver(cached.data).await
    }

    /// The request's cache policy: the original request's (redirects keep it), read without
    /// copying the request.
    fn cache_policy(&self) -> RequestCachePolicy {
        cache_policy(&self.ctx, &self.info)
    }

    /// Whether the URL cache has a say in sending `head`: a data task's `GET` whose policy reads a
    /// cache that can keep something, or forbids the network. Only then is it consulted
    /// ([`Run::cache_plan`]).
    pub(super) fn cache_has_a_say(&self, head: &Head, body: Option<&super::UploadBody>) -> bool {
        self.sink.is_none() && cache_has_a_say(&self.ctx, &self.info, &head.method, body.is_some())
    }

    /// Consults the cache for a request it has a say in ([`Run::cache_has_a_say`]); `head` may
    /// gain validators.
    pub(super) async fn cache_plan(&self, head: &mut Head) -> Result<Plan, Halt> {
        let policy = self.cache_policy();
        // A request for part of the resource (`Range`) is not answered with the whole one the
        // cache keeps: it goes to the network, as a request the cache has nothing for. (It was:
        // `-H "Range: bytes=6-10"` got all 24,000 bytes, with a 200.)
        let ranged = head.headers.contains_key(http::header::RANGE);
        // Nor is a request with conditions of its own (`If-None-Match`, `If-Modified-Since`...):
        // its 304 is the answer its sender wants, about the copy it holds, as URLSession and
        // OkHttp send it. (It was: `-H 'If-None-Match: <the tag>'` got the stored 200, and never
        // reached the server.)
        let conditional = [
            http::header::IF_NONE_MATCH,
            http::header::IF_MODIFIED_SINCE,
            http::header::IF_MATCH,
            http::header::IF_UNMODIFIED_SINCE,
        ]
        .iter()
        .any(|name| head.headers.contains_key(name));
        // No reload-ignoring policy gets here (`cache_has_a_say`); a forbidding one may, with a
        // cache that keeps nothing.
        let entry = match &self.ctx.url_cache {
            Some(cache) if cache.can_keep_anything() && !ranged && !conditional => {
                cache.get(&self.url).await
            }
            _ => None,
        };
        let Some(entry) = entry else {
            return match policy {
                RequestCachePolicy::ReturnCacheDataDontLoad => Err(Halt::Failed(
                    Error::new(
                        ErrorCode::CannotLoadFromNetwork,
                        "not in the cache, and the cache policy forbids loading",
                    )
                    .with_url(self.url.as_str()),
                )),
                _ => Ok(Plan::Network),
            };
        };
        match policy {
            RequestCachePolicy::ReturnCacheDataElseLoad
            | RequestCachePolicy::ReturnCacheDataDontLoad => {
                Ok(Plan::Serve(Box::new(CachedResponse {
                    response: entry.response.clone(),
                    data: entry.body.clone(),
                })))
            }
            RequestCachePolicy::UseProtocolCachePolicy => {
                let now = SystemTime::now();
                match entry.policy.before_request(&RequestHead(head), now) {
                    // (The policy's parts say HTTP/1.1 whatever the response came over.)
                    BeforeRequest::Fresh(parts) => Ok(Plan::Serve(Box::new(CachedResponse {
                        response: Response::new(
                            self.url.clone(),
                            parts.status,
                            entry.response.version(),
                            with_http_date(parts.headers, now),
                        ),
                        data: entry.body.clone(),
                    }))),
                    BeforeRequest::Stale { request, matches } if matches => {
                        head.headers = Arc::new(request.headers);
                        Ok(Plan::Revalidate(entry))
                    }
                    BeforeRequest::Stale { .. } => Ok(Plan::Network),
                }
            }
            _ => Ok(Plan::Network),
        }
    }

    /// A 304 to a revalidation: the cached entry, with its headers refreshed, answers, with the
    /// status it was stored with (a 200), as URLSession delivers it: the application asked for
    /// the resource, not for the cache's conditional request.
    ///
    /// A 304 whose validators do not select the entry (RFC 9111 4.3.4: a server that answers
    /// with no `ETag` or `Last-Modified`, as Python's `http.server` does, though the entry has
    /// one) updates nothing, but still says the entry the cache asked about is current: the entry
    /// answers as it was stored. (It answered with the 304's status and fields over the stored
    /// body: a `304` with no `Content-Type` to a `get`.)
    pub(super) fn revalidated(
        &self,
        entry: &Entry,
        head: &Head,
        response: &Response,
    ) -> CachedResponse {
        let now = SystemTime::now();
        let fresh =
            match entry
                .policy
                .after_response(&RequestHead(head), &ResponseHead(response), now)
            {
                AfterResponse::NotModified(policy, parts) => Entry {
                    policy,
                    response: Response::new(
                        self.url.clone(),
                        parts.status,
                        entry.response.version(),
                        with_http_date(parts.headers, now),
                    ),
                    body: entry.body.clone(),
                },
                AfterResponse::Modified(..) => {
                    return CachedResponse {
                        response: entry.response.clone(),
                        data: entry.body.clone(),
                    };
                }
            };
        let served = CachedResponse {
            response: fresh.response.clone(),
            data: fresh.body.clone(),
        };
        // A 304 over a connection whose trust was overridden refreshes nothing that outlives it.
        if !self.overridden
            && let Some(cache) = &self.ctx.url_cache
        {
            cache.put(&self.url, fresh);
        }
        served
    }

    /// Starts gathering a network response the cache may keep.
    pub(super) fn consider_for_cache(&mut self, head: &Head, response: &Response) {
        let Some(cache) = &self.ctx.url_cache else {
            return;
        };
        let limit = cache.memory_capacity().max(cache.disk_capacity()) / 20;
        if limit == 0 {
            return; // no cache: nothing to judge (and no copies of the head to make)
        }
        let policy = CachePolicy::new_options(
            &RequestHead(head),
            &ResponseHead(response),
            SystemTime::now(),
            cache::options(),
        );
        if policy.is_storable() {
            self.cache_candidate = Some(Box::new(Candidate {
                policy,
                response: response.clone(),
                body: BytesMut::new(),
                limit,
            }));
        }
    }

    /// Adds delivered body bytes to the candidate; a body past the limit is not cached.
    pub(super) fn gather_for_cache(&mut self, data: &Bytes) {
        if let Some(c) = &mut self.cache_candidate {
            if c.body.len() + data.len() > c.limit {
                self.cache_candidate = None;
            } else {
                c.body.extend_from_slice(data);
            }
        }
    }

    /// The body is complete: offers the response to the delegate, then stores what it answers.
    pub(super) async fn offer_to_cache(&mut self) -> Result<(), Halt> {
        let Some(c) = self.cache_candidate.take() else {
            return Ok(());
        };
        if self.sink.is_some() {
            return Ok(()); // the task became a download: its body is a file, not a cache entry
        }
        let proposed = CachedResponse {
            response: c.response,
            data: c.body.freeze(),
        };
        // No delegate to ask (the actor would answer with the response as it is): stored at once,
        // without a trip through the actor.
        if !self.ctx.delegate_wants(&self.info, Callback::WillCache) {
            self.store_in_cache(c.policy, proposed);
            return Ok(());
        }
        // Through the actor, so the question comes after the body's last `did_receive_data`.
        let (tx, rx) = oneshot::channel();
        if self
            .actor
            .cast(TaskMsg::OfferToCache(proposed, tx))
            .is_err()
        {
            return Err(Halt::Interrupted);
        }
        let answer = unless_stopped(&mut self.gate, rx).await?.ok().flatten();
        if let Some(cached) = answer {
            self.store_in_cache(c.policy, cached);
        }
        Ok(())
    }

    fn store_in_cache(&self, policy: CachePolicy, cached: CachedResponse) {
        if let Some(cache) = &self.ctx.url_cache {
            let entry = Entry {
                policy,
                response: cached.response,
                body: cached.data,
            };
            cache.put(&self.url, entry);
        }
    }
}

/// A task's cache policy: its original request's (redirects keep it), or the session's.
fn cache_policy(ctx: &SessionContext, info: &TaskInfo) -> RequestCachePolicy {
    info.original_request()
        .cache_policy()
        .unwrap_or(ctx.config.request_cache_policy)
}

/// Whether the URL cache may answer a request for `url` without a connection, before its transfer
/// exists (its session deciding whether it takes a turn with its host first): the cache has a say
/// ([`cache_has_a_say`]) and may hold an entry for the URL ([`UrlCache::may_hold`]), or the
/// request must not load. Stale entries need the connection too, but that takes a read to tell.
///
/// [`UrlCache::may_hold`]: crate::stores::cache::UrlCache::may_hold
pub(super) fn cache_may_answer(
    ctx: &SessionContext,
    info: &TaskInfo,
    method: &http::Method,
    has_body: bool,
    url: &url::Url,
) -> bool {
    cache_has_a_say(ctx, info, method, has_body)
        && (cache_policy(ctx, info) == RequestCachePolicy::ReturnCacheDataDontLoad
            || ctx
                .url_cache
                .as_ref()
                .is_some_and(|cache| cache.may_hold(url)))
}

/// [`Run::cache_has_a_say`] for a request whose body goes to memory, before its transfer exists.
pub(super) fn cache_has_a_say(
    ctx: &SessionContext,
    info: &TaskInfo,
    method: &http::Method,
    has_body: bool,
) -> bool {
    if has_body || method != http::Method::GET {
        return false;
    }
    match cache_policy(ctx, info) {
        RequestCachePolicy::ReloadIgnoringLocalCacheData => false,
        RequestCachePolicy::ReturnCacheDataDontLoad => true,
        // A cache that can keep nothing is not asked (no lock, no lookup per request).
        _ => ctx
            .url_cache
            .as_ref()
            .is_some_and(|cache| cache.can_keep_anything()),
    }
}

/// `http-cache-semantics` writes the `Date` of a response it serves (`at`, the moment it looked) in
/// RFC 2822's form, `Mon, 07 Dec 2026 13:24:18 +0000`; HTTP's is RFC 9110's IMF-fixdate,
/// `Mon, 07 Dec 2026 13:24:18 GMT`, the only one HTTP date parsers must read. The same instant,
/// written as HTTP writes it.
fn with_http_date(mut headers: http::HeaderMap, at: SystemTime) -> http::HeaderMap {
    if let Ok(date) = http::HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        headers.insert(http::header::DATE, date);
    }
    headers
}
