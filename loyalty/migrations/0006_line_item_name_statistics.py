from django.db import migrations

# Audiences match line items by lower(category), lower(brand) and lower(product). Without
# statistics on those expressions PostgreSQL guesses a handful of matches where there are
# a million, and picks a plan that reads every line.
STATISTICS = [
    ("lineitem_lower_category_stats", "category"),
    ("lineitem_lower_brand_stats", "brand"),
    ("lineitem_lower_product_stats", "product"),
]


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0005_transaction_source_location_and_more")]

    operations = [
        migrations.RunSQL(
            f"CREATE STATISTICS IF NOT EXISTS {name} ON (lower({column})) FROM loyalty_lineitem",
            f"DROP STATISTICS IF EXISTS {name}",
        )
        for name, column in STATISTICS
    ]
