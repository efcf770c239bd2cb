//! Documented timeouts of well-known proxies, load balancers and platforms,
//! named as evidence when a diagnosis' time equals one of them. The README
//! keeps the same table with the source of each value; change both together.

/// One documented default.
pub struct Default {
    pub secs: f64,
    pub name: &'static str,
}

const fn d(secs: f64, name: &'static str) -> Default {
    Default { secs, name }
}

/// Idle timeouts: a connection with no traffic in either direction for this
/// long is cut (`idle_timeout`).
pub const IDLE: &[Default] = &[
    d(
        50.0,
        "HAProxy timeout client/server of Debian's stock haproxy.cfg (50 s)",
    ),
    d(55.0, "Heroku router idle timeout (55 s)"),
    d(
        60.0,
        "nginx proxy_read_timeout (default 60 s; also ingress-nginx)",
    ),
    d(60.0, "AWS ALB idle timeout (default 60 s)"),
    d(
        60.0,
        "AWS Classic Load Balancer idle timeout (default 60 s)",
    ),
    d(100.0, "Cloudflare proxy idle timeout (100 s)"),
    d(
        240.0,
        "Azure Load Balancer TCP idle timeout (default 4 min)",
    ),
    d(300.0, "Envoy stream_idle_timeout (default 5 min)"),
    d(300.0, "Azure Front Door WebSocket idle timeout (5 min)"),
    d(350.0, "AWS NLB TCP idle timeout (350 s)"),
    d(600.0, "AWS API Gateway WebSocket idle timeout (10 min)"),
];

/// Lifetime caps: a connection is cut at this age whatever its traffic
/// (`max_lifetime`).
pub const LIFETIME: &[Default] = &[
    d(
        30.0,
        "GCP load balancer backend service timeout (default 30 s, a WebSocket's lifetime)",
    ),
    d(
        300.0,
        "Cloud Run request timeout (default 5 min, a WebSocket's lifetime)",
    ),
    d(
        7200.0,
        "AWS API Gateway WebSocket connection duration (2 h)",
    ),
    d(
        14400.0,
        "Azure Front Door WebSocket connection lifetime (4 h)",
    ),
];

/// How far apart two times may be and still be "the same" (the contract's
/// max(0.5 s, 2 %)).
pub fn tolerance(secs: f64) -> f64 {
    (0.02 * secs).max(0.5)
}

/// The defaults of `table` that `secs` equals within the tolerance.
pub fn matching(table: &[Default], secs: f64) -> Vec<String> {
    table
        .iter()
        .filter(|d| (d.secs - secs).abs() <= tolerance(d.secs))
        .map(|d| d.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_seconds_names_nginx_and_alb() {
        let m = matching(IDLE, 59.81);
        assert!(m.iter().any(|n| n.contains("nginx")));
        assert!(m.iter().any(|n| n.contains("ALB")));
        assert!(!m.iter().any(|n| n.contains("Heroku")));
        assert!(matching(IDLE, 2.0).is_empty());
        assert_eq!(matching(LIFETIME, 30.3).len(), 1);
    }
}
