# The state a console change found, when it was made outside the console, is kept as a version.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('taskops', '0012_worker_states'),
    ]

    operations = [
        migrations.AlterField(
            model_name='scheduleversion',
            name='action',
            field=models.CharField(choices=[('created', 'Created'), ('edited', 'Edited'), ('enabled', 'Enabled'), ('disabled', 'Disabled'), ('cloned', 'Cloned'), ('imported', 'Imported'), ('restored', 'Restored'), ('deleted', 'Deleted'), ('found', 'Found (made outside the console)')], max_length=16),
        ),
    ]
