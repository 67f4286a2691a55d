"""Words the simulated catalogue builds titles, authors and brands from."""

from __future__ import annotations

ADJECTIVES = (
    "Silent",
    "Hidden",
    "Last",
    "Broken",
    "Golden",
    "Wild",
    "Quiet",
    "Lost",
    "Burning",
    "Practical",
    "Complete",
    "Modern",
    "Little",
    "Secret",
    "Final",
    "Endless",
)
NOUNS = (
    "River",
    "Garden",
    "Kingdom",
    "Letters",
    "Machine",
    "Winter",
    "Harbor",
    "Empire",
    "Orchard",
    "Mountain",
    "Signal",
    "Library",
    "Compass",
    "Voyage",
    "Storm",
    "Lantern",
)
SUBJECTS = (
    "Python",
    "Statistics",
    "Organic Chemistry",
    "Accounting",
    "Calculus",
    "Biology",
    "Microeconomics",
    "Anatomy",
    "Physics",
    "Marketing",
    "Psychology",
    "Nursing",
)
FIRST_NAMES = ("Anna", "James", "Maria", "David", "Laura", "Peter", "Susan", "Mark", "Elena", "Tom")
LAST_NAMES = (
    "Keller",
    "Hughes",
    "Novak",
    "Brennan",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Sato",
    "Fischer",
    "Walsh",
    "Costa",
    "Reyes",
)
BRANDS = ("Acme", "Northwind", "Lumina", "Vertex", "Oakridge", "Brightline", "Nimbus", "Korra")
THINGS = {
    172282: ("Wireless Earbuds", "USB-C Hub", "Action Camera", "Portable SSD", "Webcam"),
    1055398: ("Chef Knife", "Cast Iron Skillet", "Desk Lamp", "Storage Bins", "Kettle"),
    165793011: ("Building Set", "Board Game", "Puzzle 1000 Pieces", "Plush Bear", "RC Car"),
    3375251: ("Yoga Mat", "Camping Lantern", "Water Bottle", "Resistance Bands", "Tent"),
    2625373011: ("Season 1 (DVD)", "Collector's Edition (Blu-ray)", "Box Set (DVD)"),
}
# Book titles by sub-category ({adjective}, {noun}, {subject}, {n}); fiction and
# sub-categories not listed read "The {adjective} {noun}".
BOOK_TITLES = {
    1: "Drawing the {noun}: {n} Studies in Light",
    2: "A Life by the {noun}: A Memoir",
    3: "The {adjective} Ledger: Running a Small Business",
    4: "Little Fox and the {adjective} {noun}",
    5: "Programming the {noun}: Software in Practice",
    6: "The {adjective} Kitchen: {n} Recipes",
    9: "The {noun} Wars: A History",
    75: "The {adjective} Universe: Science for Everyone",
    4736: "The {adjective} Habit: {n} Days to a Better You",
    465600: "{subject}: A Complete Course",
}
