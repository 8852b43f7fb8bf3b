fn main() {
    println!("ctrl: coming");
}
