#[derive(serde::Serialize)]
struct Point {
    x: i32,
}

#[mp::job]
fn first(points: Vec<Point>, scale: i32) -> i32 {
    points[0].x * scale
}

fn main() {
    assert_eq!(first(vec![Point { x: 2 }], 2), 4);
}
