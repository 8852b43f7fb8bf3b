fn main() {
    println!("dash: coming");
}
