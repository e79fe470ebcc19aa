"""Return the fixed prompt lists of the happiness steering exercise.

Written for interplab (not drawn from a dataset): 32 happy and 32 sad short first-person
sentences, paired line by line so that each pair differs mainly in its emotion (same situation,
opposite feeling), which keeps topic out of the difference of means; and 16 neutral sentence
openings to continue while steering, none of which states a feeling.
"""

from __future__ import annotations

HAPPY_PROMPTS: tuple[str, ...] = (
    "I am so happy today.",
    "I feel wonderful this morning.",
    "I love my life and everyone in it.",
    "I am thrilled about the good news.",
    "I laughed all afternoon with my friends.",
    "I feel joyful and full of energy.",
    "I am delighted with how things turned out.",
    "I can't stop smiling.",
    "I am grateful for this beautiful day.",
    "I feel cheerful and relaxed.",
    "I am excited about the weekend.",
    "I had the best day of my life.",
    "I feel proud and content.",
    "I am overjoyed to see my family.",
    "I feel hopeful about the future.",
    "I am glad that I came here.",
    "I feel light and happy.",
    "I enjoyed every minute of the party.",
    "I am in a great mood.",
    "I feel blessed and lucky.",
    "I am so pleased with my new job.",
    "I danced with joy when I heard.",
    "I feel calm, safe and happy at home.",
    "I love the sunshine on my face.",
    "I am happy to help my friends.",
    "I feel fantastic after my walk.",
    "I am thankful for my kind neighbours.",
    "I had a lovely dinner with my sister.",
    "I feel warm and loved.",
    "I am cheerful whenever I think of you.",
    "I feel amazing today.",
    "I am full of happiness.",
)
"""32 happy first-person sentences; ``HAPPY_PROMPTS[i]`` mirrors ``SAD_PROMPTS[i]``."""

SAD_PROMPTS: tuple[str, ...] = (
    "I am so sad today.",
    "I feel terrible this morning.",
    "I hate my life and everyone in it.",
    "I am devastated by the bad news.",
    "I cried all afternoon without my friends.",
    "I feel miserable and exhausted.",
    "I am disappointed with how things turned out.",
    "I can't stop crying.",
    "I am tired of this gloomy day.",
    "I feel gloomy and tense.",
    "I am dreading the weekend.",
    "I had the worst day of my life.",
    "I feel ashamed and empty.",
    "I am heartbroken to leave my family.",
    "I feel hopeless about the future.",
    "I am sorry that I came here.",
    "I feel heavy and sad.",
    "I hated every minute of the party.",
    "I am in a terrible mood.",
    "I feel cursed and unlucky.",
    "I am so upset about losing my job.",
    "I wept with grief when I heard.",
    "I feel anxious, alone and sad at home.",
    "I hate the cold rain on my face.",
    "I am too sad to help my friends.",
    "I feel awful after my walk.",
    "I am hurt by my unkind neighbours.",
    "I had a lonely dinner without my sister.",
    "I feel cold and unloved.",
    "I am miserable whenever I think of you.",
    "I feel awful today.",
    "I am full of sadness.",
)
"""32 sad first-person sentences, each the mirror of the happy sentence at the same index."""

NEUTRAL_PROMPTS: tuple[str, ...] = (
    "I think that",
    "Today I went to the",
    "When I woke up this morning,",
    "My neighbour told me that",
    "Yesterday I saw",
    "The weather this week",
    "After work I usually",
    "I looked out of the window and",
    "My brother called me and said",
    "On the way home I",
    "I opened the letter and",
    "The meeting this afternoon",
    "I walked into the kitchen and",
    "Last weekend we",
    "When the train arrived,",
    "I sat down and wrote",
)
"""16 neutral openings (no stated feeling) to continue under steering."""
