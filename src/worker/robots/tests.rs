use super::rules::Rules;
use super::*;

fn origin(host: &str) -> Origin {
    crate::url::parse_origin(&format!("http://{host}/")).expect("an origin")
}

/// `origin` as if its robots.txt had said `body` (a 200).
fn remember(robots: &Robots, origin: &Origin, body: &str) {
    assert!(matches!(robots.known_or_claim(origin), Lookup::Claimed));
    let rules = Rules::parse(body.as_bytes(), "ringscrape");
    let claim = Claim {
        robots,
        origin: Some(origin),
    };
    claim.settle(Rc::new(Said::Rules { status: 200, rules }));
}

#[test]
fn crawl_delay_books_starts_the_delay_times_the_workers_apart() {
    let robots = Robots::new("ringscrape/1", 2);
    let host = origin("a.test");
    remember(&robots, &host, "User-agent: *\nCrawl-delay: 0.5\n");
    assert_eq!(robots.crawl_delay(&host), Some(Duration::from_millis(500)));
    let now = Instant::now();
    let starts: Vec<_> = (0..3).map(|_| robots.book(&host, now)).collect();
    let second = Duration::from_secs(1);
    assert_eq!(
        starts,
        [Some(now), Some(now + second), Some(now + 2 * second)]
    );
    // Long after, the next goes at once.
    let later = now + 10 * second;
    assert_eq!(robots.book(&host, later), Some(later));
}

#[test]
fn no_crawl_delay_no_booking() {
    let robots = Robots::new("ringscrape", 1);
    let host = origin("b.test");
    remember(
        &robots,
        &host,
        "User-agent: *\nDisallow: /x\nCrawl-delay: 0\n",
    );
    assert_eq!(robots.crawl_delay(&host), None);
    assert_eq!(robots.book(&host, Instant::now()), None);
    assert_eq!(robots.book(&origin("unknown.test"), Instant::now()), None);
}

#[test]
fn a_fetch_dropped_half_way_lets_another_claim_the_origin() {
    let robots = Robots::new("ringscrape", 1);
    let host = origin("c.test");
    assert!(matches!(robots.known_or_claim(&host), Lookup::Claimed));
    assert!(robots.on_its_way(&host));
    assert!(matches!(robots.known_or_claim(&host), Lookup::OnItsWay));
    drop(Claim {
        robots: &robots,
        origin: Some(&host),
    });
    assert!(!robots.on_its_way(&host));
    assert!(matches!(robots.known_or_claim(&host), Lookup::Claimed));
}

#[test]
fn the_least_recently_used_origins_go_first_past_the_cap() {
    let robots = Robots::new("ringscrape", 1);
    let first = origin("first.test");
    remember(&robots, &first, "User-agent: *\nDisallow: /a\n");
    for n in 0..MAX_HOSTS {
        remember(&robots, &origin(&format!("h{n}.test")), "");
        if n == MAX_HOSTS / 2 {
            // Asked again: it becomes recent.
            assert!(matches!(robots.known_or_claim(&first), Lookup::Known(_)));
        }
    }
    let hosts = robots.hosts.borrow();
    assert!(hosts.len() <= MAX_HOSTS, "{}", hosts.len());
    assert!(hosts.contains_key(&first));
    assert!(!hosts.contains_key(&origin("h0.test")));
    let held: usize = hosts.values().map(|host| host.bytes).sum();
    assert_eq!(held, robots.bytes.get());
}

#[test]
fn what_an_origin_costs() {
    let robots = Robots::new("ringscrape", 1);
    let host = origin("www.example.com");
    let body = "User-agent: *\nDisallow: /cgi-bin/\nDisallow: /tmp/\nDisallow: /private/\n\
                Allow: /private/press/\nDisallow: /search\nDisallow: /*.pdf$\n\
                Disallow: /login\nDisallow: /cart\nDisallow: /account/\nDisallow: /api/\n";
    remember(&robots, &host, body);
    let bytes = robots.bytes.get();
    // A file of ten rules: under a kilobyte, and what the module's doc says.
    const { assert!(HOST_BYTES < 300) };
    eprintln!("an origin: {HOST_BYTES} bytes; with a robots.txt of ten rules: {bytes}");
    assert!(
        bytes < 1024,
        "{bytes} bytes (an origin alone: {HOST_BYTES})"
    );
}
