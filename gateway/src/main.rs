fn main() {
    println!("gateway: coming");
}
